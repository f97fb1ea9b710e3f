"""Training: `trainer.train(TrainConfig)` with the loss, batches (train/data.py), optimizers, EMA and DDP."""
