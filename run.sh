#!/usr/bin/env bash
# The one command: prepare the venv, make sure a ZooKeeper answers (offering to install one), run a challenge.
#   ./run.sh leader | hashing | smoke [--yes] [challenge options]
#   ./run.sh zk start|status|stop|kill N|pause N|resume N|restart N     a ZooKeeper every terminal shares
#   ./run.sh tree [PATH]                                                the znodes, live
#   ./run.sh check | exercise | soak ...                                the checker, exercises, chaos soak
exec bash "$(dirname "${BASH_SOURCE[0]}")/start_venv.sh" python -m zklab.run "$@"
