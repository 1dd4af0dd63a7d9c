"""Training: config, device, loop, checkpoints, schedules, run-dir manifest; evaluate/predict.

    from dlbox.training.config import build_config
    from dlbox.training.loop import train
    run_dir = train(build_config("tiny", device="cpu", data_dir="/tmp/cifar10", epochs=1))
"""
