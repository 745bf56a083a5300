"""LeNet-5 on handwritten digits through ``s4.train.TrainingLoop`` (swift-models' LeNet-MNIST).

The model is S4TF's LeNet exactly: conv 5x5x6 ("same") / avg-pool / conv 5x5x16 / avg-pool /
flatten / dense 120 / dense 84 / dense 10, ReLU activations. It expects MNIST's 28x28 images;
the embedded data set is scikit-learn's 1,797 real 8x8 digits (no download), so each image is
**upsampled to 28x28 with bilinear interpolation** (scipy.ndimage.zoom, order 1). Upsampling,
rather than zero-padding 8x8 into 28x28, keeps the digit covering the field as an MNIST digit
does, so both 5x5 convolutions see strokes at MNIST's scale and the architecture (400 = 5x5x16
features after the second pool) is unchanged.

A stratified 20% of the images is held out for validation (359 images, never trained on).

Run it (from the repository root)::

    python examples/lenet_digits.py                 # 20 epochs, prints a progress bar
    python examples/lenet_digits.py --epochs 5 --plot loss.png --checkpoint-dir /tmp/lenet

It prints the validation accuracy and the wall-clock time at the end, and exits with status 1
when the accuracy is below ``--target`` (0.97).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import s4tf_py as s4
from s4tf_py import losses, optimizers, train
from s4tf_py.data import InferenceBatches, TrainingEpochs, digits, train_validation_split
from s4tf_py.nn.convolutional import Conv2D
from s4tf_py.nn.pooling import AvgPool2D


class LeNet(s4.nn.Layer):
    """S4TF's LeNet-5 (swift-models ``LeNet``), for 28x28x1 NHWC images."""

    conv1: Conv2D
    pool1: AvgPool2D
    conv2: Conv2D
    pool2: AvgPool2D
    flatten: s4.nn.Flatten
    fc1: s4.nn.Dense
    fc2: s4.nn.Dense
    fc3: s4.nn.Dense

    def __call__(self, x):
        convolved = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc3(self.fc2(self.fc1(self.flatten(convolved))))

    @staticmethod
    def create(seed: int = 0) -> "LeNet":
        return LeNet(
            conv1=Conv2D(filter_shape=(5, 5, 1, 6), padding="same", activation=s4.relu,
                         seed=seed),
            pool1=AvgPool2D(pool_size=(2, 2), strides=(2, 2)),
            conv2=Conv2D(filter_shape=(5, 5, 6, 16), activation=s4.relu, seed=seed + 1),
            pool2=AvgPool2D(pool_size=(2, 2), strides=(2, 2)),
            flatten=s4.nn.Flatten(),
            fc1=s4.nn.Dense(400, 120, activation=s4.relu, seed=seed + 2),
            fc2=s4.nn.Dense(120, 84, activation=s4.relu, seed=seed + 3),
            fc3=s4.nn.Dense(84, 10, seed=seed + 4))


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits as (1797, 28, 28, 1) float32 images in [0, 1], and their labels."""
    from scipy.ndimage import zoom
    images, labels = digits()
    big = zoom(images, (1, 28 / 8, 28 / 8), order=1)        # bilinear, 8x8 -> 28x28
    return np.clip(big, 0.0, 1.0).astype(np.float32)[..., None], labels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="write the loss curve to this PNG")
    p.add_argument("--checkpoint-dir", default=None,
                   help="checkpoint each epoch here (and resume from it)")
    p.add_argument("--mixed-precision", choices=["bf16", "fp16"], default=None)
    p.add_argument("--target", type=float, default=0.97)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    images, labels = digits_28x28()
    train_set, valid_set = train_validation_split((images, labels), 0.2, seed=args.seed,
                                                  stratify=labels)
    steps_per_epoch = len(train_set[1]) // args.batch_size
    callbacks = [train.LRScheduler(optimizers.WarmupCosineDecay(
        peak_value=args.learning_rate, warmup_steps=steps_per_epoch,
        decay_steps=steps_per_epoch * args.epochs))]
    if args.plot:
        callbacks.append(train.LossCurve(args.plot, title="LeNet-5 on digits"))
    loop = train.TrainingLoop(
        training=TrainingEpochs(train_set, batch_size=args.batch_size, seed=args.seed),
        validation=InferenceBatches(valid_set, batch_size=256),
        optimizer=lambda m: optimizers.Adam(for_=m, learning_rate=args.learning_rate),
        loss_function=losses.softmax_cross_entropy,
        metrics=["accuracy"], callbacks=callbacks, mixed_precision=args.mixed_precision,
        checkpoint_dir=args.checkpoint_dir, seed=args.seed)
    model = loop.fit(LeNet.create(args.seed), epochs=args.epochs)
    seconds = time.perf_counter() - t0

    # the held-out accuracy, computed again here from the returned model
    logits = np.concatenate([model(s4.Tensor(valid_set[0][i:i + 256])).numpy()
                             for i in range(0, len(valid_set[1]), 256)])
    accuracy = float((logits.argmax(axis=1) == valid_set[1]).mean())
    print(f"LeNet-5: validation accuracy {accuracy:.4f} on {len(valid_set[1])} held-out "
          f"images after {loop.epoch_index + 1} epochs, {seconds:.1f} s in all "
          f"(data, compile and training), {loop.train_step.traces} trace of the train step")
    return 0 if accuracy >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
