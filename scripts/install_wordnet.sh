#!/bin/sh
# WordNet 3.0 for the synonym sources (jaxrobust/attacks/wordnet.py), from Debian's packages.
# nltk's own `wordnet` download needs the internet at run time; Debian's copy installs with the
# machine and is then prepared for nltk offline. Installs only when missing and when we are root
# with apt-get; otherwise says in one line how to get it and exits 0 (the project installs and its
# other parts work without WordNet).
set -u

if [ -f /usr/share/wordnet/data.noun ]; then
    echo "WordNet: found in /usr/share/wordnet"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "WordNet: installing wordnet-base wordnet-sense-index with apt-get"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index; then
        exit 0
    fi
    echo "WordNet: apt-get could not install wordnet-base wordnet-sense-index; the WordNet synonym sources will say how to get it" >&2
    exit 0
fi
echo "WordNet: not installed; run 'sudo apt-get install wordnet-base wordnet-sense-index' (or, online, 'python -m nltk.downloader wordnet')"
exit 0
