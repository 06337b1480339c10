"""Shared fixtures: tiny random Hugging Face models written to temporary directories."""

from __future__ import annotations

import jax
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import BertTokenizer, PreTrainedTokenizerFast

jax.config.update("jax_default_matmul_precision", "highest")

TINY = dict(
    vocab_size=120,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    pad_token_id=1,  # RoBERTa and MPNet pad with id 1; the tiny vocabulary below puts [PAD] there
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)
WORDS = ["the", "film", "was", "good", "bad", "not", "very", "plot", "a", "and", "it", "##s", "great", "boring"]


def _tiny_config(family: str, num_labels: int):
    from transformers import BertConfig, MPNetConfig, RobertaConfig

    cls = {"bert": BertConfig, "roberta": RobertaConfig, "mpnet": MPNetConfig}[family]
    return cls(**TINY, num_labels=num_labels)


def _write_tokenizer(directory) -> None:
    """A WordPiece tokenizer over a tiny vocabulary (ids stay below TINY['vocab_size'])."""
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(vocab=str(vocab)).save_pretrained(str(directory))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``make(family, num_labels=3) -> (directory, torch model in eval mode)``, cached per session."""
    import torch
    from transformers import AutoModelForSequenceClassification

    made = {}

    def make(family: str, num_labels: int = 3):
        if (family, num_labels) not in made:
            torch.manual_seed(0)
            model = AutoModelForSequenceClassification.from_config(_tiny_config(family, num_labels)).eval()
            directory = tmp_path_factory.mktemp(f"tiny-{family}")
            model.save_pretrained(str(directory))
            _write_tokenizer(directory)
            made[family, num_labels] = (directory, model)
        return made[family, num_labels]

    return make


@pytest.fixture(scope="session")
def wide_model_dir(tmp_path_factory):
    """A tiny 2-label BERT initialised with std 0.2 instead of 0.02, over conftest's vocabulary: its
    predictions and pooled features depend on the words (conftest's tiny model gives every sentence
    nearly the same pooled feature, cosine 1 - 1e-5, which pins RIFT's InfoNCE at log n)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    config = _tiny_config("bert", 2)
    config.initializer_range = 0.2
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-bert-wide")
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(directory))
    _write_tokenizer(directory)
    return directory


def _sentences(words: list[str]) -> list[str]:
    """48 distinct sentences that each use the words of one class only (the tiny vocabulary above)."""
    one = [f.format(x) for f in ("{}", "it was {}", "the film was {}", "the plot was {}", "a {} film", "a {} plot") for x in words]
    two = [f.format(x, y) for f in ("{} and {}", "it was {} and {}") for x in words for y in words if x != y]
    return one + two


# Every sentence once: the split deduplicates, so repeated rows would only shrink the task.
POSITIVE = _sentences(["good", "great", "very good", "very great"])
NEGATIVE = _sentences(["bad", "boring", "very bad", "very boring"])


def write_tiny_task(folder) -> str:
    """A separable sentiment CSV of 96 distinct sentences over the tiny vocabulary: its task reference."""
    path = folder / "tiny.csv"
    rows = [(t, "pos") for t in POSITIVE] + [(t, "neg") for t in NEGATIVE]
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows))
    return f"csv:{path}"


def make_tiny_config(model_dir, task: str):
    """The tiny BERT fine-tuned on ``task``: 8 epochs of 11 steps, logged every step."""
    from jaxrobust.train import default_config

    c = default_config()
    c.task = task
    c.model = str(model_dir)
    c.max_length = 16
    c.buckets = (4, 16)  # the 2-word sentences fill the first bucket, the rest the second
    c.batch_size = 8
    c.eval_batch_size = 16
    c.epochs = 8
    c.lr = 1e-2
    c.warmup_ratio = 0.0
    c.log_every_steps = 1
    c.checkpoint_every_steps = 1000  # at epoch ends only; the resume tests ask for more
    return c


@pytest.fixture
def tiny_task(tmp_path):
    return write_tiny_task(tmp_path)


@pytest.fixture
def tiny_config(tiny_model_dir, tiny_task):
    return make_tiny_config(tiny_model_dir("bert", num_labels=2)[0], tiny_task)


@pytest.fixture(scope="session")
def tiny_ft_run(tiny_model_dir, tmp_path_factory):
    """``(config, run directory, results)`` of one finished run of the default ``tiny_config``,
    trained once per session for the tests that only read such a run."""
    from jaxrobust.train import train_and_evaluate

    root = tmp_path_factory.mktemp("tiny-ft-run")
    config = make_tiny_config(tiny_model_dir("bert", num_labels=2)[0], write_tiny_task(root))
    return config, root / "run", train_and_evaluate(config, root / "run")


# Two-token word for the attacks' multi-token rule: "films" is "film" + "##s" in the tiny vocabulary.
def _film_sentences(words: list[str]) -> list[str]:
    return [f"{x} films" for x in words] + [f"the films were {x}" for x in words]


ATTACK_SENTENCES = [(t, "pos") for t in POSITIVE + _film_sentences(["good", "great", "very good", "very great"])] + [
    (t, "neg") for t in NEGATIVE + _film_sentences(["bad", "boring", "very bad", "very boring"])
]


@pytest.fixture(scope="session")
def trained_tiny_run(tiny_model_dir, tmp_path_factory):
    """A finished training run of the tiny BERT on a tiny sentiment task (trained once per session)."""
    from jaxrobust.train import default_config, train_and_evaluate

    directory, _ = tiny_model_dir("bert", num_labels=2)
    root = tmp_path_factory.mktemp("tiny-run")
    csv = root / "tiny.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in ATTACK_SENTENCES))
    c = default_config()
    c.task = f"csv:{csv}"
    c.model = str(directory)
    c.max_length, c.buckets, c.batch_size, c.eval_batch_size = 16, (16,), 8, 32
    c.epochs, c.lr, c.warmup_ratio = 6, 1e-2, 0.0
    train_and_evaluate(c, root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def other_tiny_run(trained_tiny_run, tmp_path_factory):
    """``trained_tiny_run`` trained for one epoch instead of its six: same task and architecture, but a
    weaker model (about 64% test accuracy) that the attacks treat differently."""
    import json

    from jaxrobust.train import default_config, train_and_evaluate

    saved = json.loads((trained_tiny_run / "config.json").read_text())
    c = default_config()
    for key in ("task", "model", "seed", "max_length", "batch_size", "eval_batch_size", "lr", "warmup_ratio"):
        c[key] = saved[key]
    c.buckets, c.epochs = tuple(saved["buckets"]), 1
    run = tmp_path_factory.mktemp("tiny-run-one-epoch") / "run"
    train_and_evaluate(c, run)
    return run


# --- tiny tokenizers of each family's kind, trained here with the `tokenizers` library ----------
# (BERT's WordPiece, byte-level BPE with and without special tokens as RoBERTa and GPT-2 add them,
# SentencePiece-style BPE with and without a dummy prefix as Llama 2 and Gemma have it)

CORPUS = ["the film was good", "the plot was bad", "hello world", "a boring film", "the films were great",
          "it was not very good", "hello there, world"] * 20
TEXT = "the films were good, hello world"


def trained_bpe(pre, decoder, special: list[str], vocab_size: int = 120, corpus: list[str] = CORPUS) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token=special[0] if special[0] == "<unk>" else None))
    tok.pre_tokenizer, tok.decoder = pre, decoder
    alphabet = pre_tokenizers.ByteLevel.alphabet() if isinstance(pre, pre_tokenizers.ByteLevel) else []
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size + len(alphabet), special_tokens=special, initial_alphabet=alphabet))
    return tok


def _template(tok: Tokenizer, single: str, pair: str) -> None:
    names = {t for t in (single + " " + pair).split() if t.startswith("<")}
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=[(n, tok.token_to_id(n)) for n in names])


def bert(tmp_path):
    words = ["the", "film", "##s", "were", "good", ",", "hello", "world", "plot", "was", "bad", "boring"]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizer(vocab=str(tmp_path / "vocab.txt"))


def gpt2(_):
    tok = trained_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def roberta(_):
    tok = trained_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<s>", "<pad>", "</s>", "<unk>"])
    _template(tok, "<s> $A </s>", "<s> $A </s> </s> $B </s>")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>")


def llama(_):
    tok = trained_bpe(pre_tokenizers.Metaspace(prepend_scheme="first"), decoders.Metaspace(prepend_scheme="first"), ["<unk>", "<s>", "</s>"])
    _template(tok, "<s> $A", "<s> $A <s> $B")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def gemma(_):
    tok = trained_bpe(pre_tokenizers.Metaspace(prepend_scheme="never"), decoders.Metaspace(prepend_scheme="never"), ["<unk>", "<pad>", "<bos>", "<eos>"])
    _template(tok, "<bos> $A", "<bos> $A <bos> $B")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")




# --- tiny decoder classifiers (GPT-2 with byte-level BPE, Llama with SentencePiece-style BPE), neither
# tokenizer with a pad token, trained on the attack task's sentences ---------------------------------


def decoder_tokenizer(family: str) -> PreTrainedTokenizerFast:
    """``family``'s tiny tokenizer, its vocabulary learnt from ATTACK_SENTENCES: the task's words are
    whole tokens, a word it never saw (e.g. "dreadful") is several."""
    corpus = [t for t, _ in ATTACK_SENTENCES]
    if family == "gpt2":
        tok = trained_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel(), ["<|endoftext|>"], corpus=corpus)
        return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    tok = trained_bpe(pre_tokenizers.Metaspace(prepend_scheme="first"), decoders.Metaspace(prepend_scheme="first"),
                      ["<unk>", "<s>", "</s>"], corpus=corpus)
    _template(tok, "<s> $A", "<s> $A <s> $B")
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory):
    """``make(family) -> directory`` of a tiny random ``family`` ("gpt2" or "llama") sequence classifier
    of 2 labels with its tokenizer, cached per session. Its config names no pad token, as GPT-2's and
    Llama's do not."""
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

    made = {}

    def make(family: str):
        if family not in made:
            tok = decoder_tokenizer(family)
            ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, num_labels=2)
            if family == "gpt2":
                config, cls = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, **ids), GPT2ForSequenceClassification
            else:
                config, cls = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2, max_position_embeddings=64, **ids), LlamaForSequenceClassification
            torch.manual_seed(0)
            directory = tmp_path_factory.mktemp(f"tiny-{family}")
            cls(config).save_pretrained(str(directory))
            tok.save_pretrained(str(directory))
            made[family] = directory
        return made[family]

    return make


@pytest.fixture(scope="session")
def tiny_decoder_run(tiny_decoder_dir, tmp_path_factory):
    """``run(family, epochs=6) -> run directory``: the tiny decoder fine-tuned on the attack task
    (``trained_tiny_run``'s settings), trained once per session."""
    from jaxrobust.train import default_config, train_and_evaluate

    runs = {}
    csv = tmp_path_factory.mktemp("tiny-decoder-task") / "tiny.csv"  # one task: runs of it can be swept together
    csv.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in ATTACK_SENTENCES))

    def run(family: str, epochs: int = 6):
        if (family, epochs) not in runs:
            root = tmp_path_factory.mktemp(f"tiny-{family}-run")
            c = default_config()
            c.task, c.model = f"csv:{csv}", str(tiny_decoder_dir(family))
            c.max_length, c.buckets, c.batch_size, c.eval_batch_size = 16, (16,), 8, 32
            c.epochs, c.lr, c.warmup_ratio = epochs, 1e-2, 0.0
            train_and_evaluate(c, root / "run")
            runs[family, epochs] = root / "run"
        return runs[family, epochs]

    return run


MLM_VOCAB = 5 + len(WORDS)  # [CLS] [PAD] [SEP] [UNK] [MASK] and the words


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory):
    """``make(family) -> (directory, torch *ForMaskedLM in eval mode)``."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, RobertaConfig, RobertaForMaskedLM

    made = {}

    def make(family: str):
        if family not in made:
            torch.manual_seed(0)
            config_cls, model_cls = {"bert": (BertConfig, BertForMaskedLM), "roberta": (RobertaConfig, RobertaForMaskedLM)}[family]
            # The vocabulary of conftest's tokenizer: every prediction is a token it can spell.
            model = model_cls(config_cls(**{**TINY, "vocab_size": MLM_VOCAB})).eval()
            with torch.no_grad():  # a head bias that is not zero, so that a head that ignored it fails
                model.get_output_embeddings().bias.normal_(0, 0.5)
            directory = tmp_path_factory.mktemp(f"tiny-mlm-{family}")
            model.save_pretrained(str(directory))
            _write_tokenizer(directory)
            made[family] = (directory, model)
        return made[family]

    return make
