# Convenience targets; the README's two commands (scripts/demo, scripts/test) need no make.
.PHONY: demo test lint typecheck bench clean

demo:
	./scripts/demo

test:
	./scripts/test

lint:
	./scripts/bootstrap && .venv/bin/ruff check ecash_tpm tests benchmarks

typecheck:
	./scripts/bootstrap && .venv/bin/mypy --strict ecash_tpm

bench:
	./scripts/bootstrap && for b in benchmarks/bench_*.py; do .venv/bin/python "$$b"; done

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
