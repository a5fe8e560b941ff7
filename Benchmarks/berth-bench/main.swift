print("berth-bench: see Benchmarks/README.md")
