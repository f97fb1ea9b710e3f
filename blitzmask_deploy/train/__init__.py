"""Training: `loop.train(TrainConfig)` with data (train/data.py), optimizer/schedule, EMA and torchrun DDP helpers."""
