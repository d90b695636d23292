"""The peer of benchmarks/time_to_accuracy.py: Keras' public ``mnist_convnet`` example
(https://keras.io/examples/vision/mnist_convnet/) as documented: 34,826 parameters,
batch 128, Adam, categorical cross-entropy, 10% of the training set held out for
validation. Two changes, both for the comparison: MNIST is read from the shared
keras-layout file (``keras.datasets`` downloads, and there is no network here), and
the test accuracy is evaluated after each epoch, stopping at the first epoch that
reaches the target (99.0%), which the example's 15 epochs would pass.

    python benchmarks/peers/mnist_convnet.py MNIST.npz [--target 0.99] [--seed 0] [--max-epochs 15]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("mnist")
parser.add_argument("--target", type=float, default=0.99)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--max-epochs", type=int, default=15)
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

num_classes = 10
input_shape = (28, 28, 1)
with np.load(args.mnist, allow_pickle=False) as f:  # the example: keras.datasets.mnist.load_data()
    (x_train, y_train), (x_test, y_test) = (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

model = keras.Sequential([
    keras.Input(shape=input_shape),
    layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Flatten(),
    layers.Dropout(0.5),
    layers.Dense(num_classes, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])


class StopAtTarget(keras.callbacks.Callback):
    """Test accuracy after each epoch; stop at the first epoch that reaches the target."""

    def on_epoch_end(self, epoch, logs=None):
        _, accuracy = self.model.evaluate(x_test, y_test, verbose=0)
        print(f"epoch {epoch + 1} test_accuracy {accuracy:.4f} at {time.perf_counter() - START:.1f}s", flush=True)
        if accuracy >= args.target:
            self.model.stop_training = True


START = time.perf_counter()
model.fit(x_train, y_train, batch_size=128, epochs=args.max_epochs, validation_split=0.1, verbose=0,
          callbacks=[StopAtTarget()])
