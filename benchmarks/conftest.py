# Activates the harness pytest plugin for the benchmarks in this folder only: installing the package
# changes no other pytest run. (Equivalent: `pytest -p harness.plugin benchmarks/`.)
pytest_plugins = ["harness.plugin"]
