#!/usr/bin/env bash
# The one command: prepare the venv, make sure a ZooKeeper answers, run a challenge.
#   ./run.sh leader | hashing | smoke [challenge options]
exec bash "$(dirname "${BASH_SOURCE[0]}")/start_venv.sh" python -m zklab.run "$@"
