# The README's two commands. Each sets up the environment first when needed (scripts/bootstrap.sh).
.PHONY: demo test

demo:
	bash scripts/bootstrap.sh dmc doctor

test:
	bash scripts/bootstrap.sh python -m pytest $(PYTEST_ARGS)
