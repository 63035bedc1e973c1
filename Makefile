.PHONY: train test test-slow
train:  ## set up on first use, then train resnet18 on the built-in data
	bash scripts/train.sh
test:  ## set up on first use, then run the test suite
	bash scripts/test.sh
test-slow:  ## the learning runs
	bash scripts/test.sh -m slow
