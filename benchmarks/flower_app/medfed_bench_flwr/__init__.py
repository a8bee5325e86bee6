"""A stock-Flower app with the same FedAvg MLP job as medfed's ``fedavg_mlp``, for the round-time ratio."""
