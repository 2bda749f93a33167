# The README's two commands. Each sets up the environment first when needed (scripts/bootstrap.sh).
.PHONY: demo test

demo:
	bash scripts/bootstrap.sh bash scripts/demo.sh

test:
	bash scripts/bootstrap.sh bash scripts/test.sh $(PYTEST_ARGS)
