"""jaxrobust."""

import os as _os


def _accurate_cpu_dots() -> None:
    """Route float32 dots on CPU through XLA's Eigen kernels, not the YNNPACK fusion that jaxlib 0.10
    uses by default: on SmolLM2-135M the YNNPACK path puts the logits 1.5e-4 from a float64 forward,
    twice transformers' float32 error (7.2e-5); with Eigen they are 6.6e-5 from it, at the same speed
    (a MiniLM training step, 2-core CPU, 2026-12-06). Must run before JAX starts its CPU backend; a
    setting of the user's own in XLA_FLAGS wins."""
    from importlib.metadata import PackageNotFoundError, version

    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return
    try:
        major, minor = (int(p) for p in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return
    if (major, minor) >= (0, 10):  # older jaxlibs do not know the flag (XLA aborts on unknown flags)
        _os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_experimental_ynn_fusion_type=".strip()


_accurate_cpu_dots()
