"""Operations people are asked to write by hand, each checked against PyTorch's own op."""
