#!/usr/bin/env bash
# The one command: prepare the venv, then hand over to the lab's runner (zklab/run.py).
#   ./run.sh                                                    every command, one line each (help, -h)
#   ./run.sh leader | hashing | smoke [--yes] [options]         a challenge's demo against a ZooKeeper
#   ./run.sh zk start|status|stop|kill N|pause N|resume N|restart N     a ZooKeeper every terminal shares
#   ./run.sh tree [PATH]                                        the znodes, live
#   ./run.sh check | exercise | soak ...                        the checker, exercises, chaos soak
# Each does what it says, or prints one line and exits 1 (environment) or 2 (usage); -v first: a traceback.
exec bash "$(dirname "${BASH_SOURCE[0]}")/start_venv.sh" python -m zklab.run "$@"
