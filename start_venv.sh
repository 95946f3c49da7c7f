#!/usr/bin/env bash
# Prepare the lab's virtual environment (.venv), then either open a shell in it or run a command in it.
#
#   bash start_venv.sh                                   # a shell with the venv active (exit to leave)
#   bash start_venv.sh python challenge_leader_election.py   # run one command inside it
#   bash start_venv.sh --dev python -m pytest            # also install the test/lint/bench tools
#
# Idempotent: requirements are installed again only when a requirements file changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

reqs=(requirements.txt)
if [ "${1:-}" = "--dev" ]; then reqs+=(requirements-dev.txt); shift; fi
python=${PYTHON:-python3}

fail() { echo "start_venv.sh: $*" >&2; exit 1; }
interrupted() { echo "start_venv.sh: interrupted; nothing was changed that a re-run does not finish" >&2; exit 130; }
trap interrupted INT TERM
# Run one step; a step that a signal ended (Ctrl-C: status 130) was interrupted, it did not fail, so it
# must not be read as "Python too old" or "venv missing".
step() { local rc=0; "$@" || rc=$?; [ "$rc" -le 128 ] || interrupted; return "$rc"; }

command -v "$python" >/dev/null 2>&1 \
  || fail "$python not found: install Python 3.10+ (apt-get install -y python3 python3-venv, or brew install python)"
step "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "Python 3.10+ is needed, found $("$python" -V 2>&1)"
step "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 \
  || fail "the venv module is missing: apt-get install -y python3-venv"

if [ ! -x .venv/bin/python ]; then
  step "$python" -m venv .venv || fail "could not create .venv (apt-get install -y python3-venv)"
fi

# One stamp per requirements file: what was installed, so a re-run costs nothing.
for req in "${reqs[@]}"; do
  stamp=".venv/.installed-$req"
  sum=$(cksum < "$req")
  if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    step .venv/bin/python -m pip install --disable-pip-version-check -q -r "$req" \
      || fail "pip could not install $req (are you online?)"
    echo "$sum" > "$stamp"
  fi
done

trap - INT TERM  # from here on the command we run decides what a signal means
# shellcheck disable=SC1091
source .venv/bin/activate
if [ $# -gt 0 ]; then
  exec "$@"
elif [ -t 0 ]; then
  echo "venv ready; you are in a shell with it active (type exit to leave)."
  exec bash --rcfile <(echo '[ -f ~/.bashrc ] && source ~/.bashrc; source .venv/bin/activate; PS1="(zk-lab) $PS1"') -i
else
  echo "venv ready: source .venv/bin/activate"
fi
