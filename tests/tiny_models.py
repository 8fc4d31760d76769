"""Names shared by tests that build tiny models from configs."""

BERT_TARGETS = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
