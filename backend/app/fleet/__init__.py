"""Several API nodes on one machine behind HAProxy (`make fleet`), and the one launcher of
server processes that the fleet, the benchmarks and the tests share."""
