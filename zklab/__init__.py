"""The lab's helpers: a local ZooKeeper launcher, a partition proxy, real faults, the one-command runner.

The challenge scripts never import this package: each stands alone on kazoo, mmh3 and the standard
library. Tests, benchmarks and `run.sh` use it.
"""
