"""The plain Keras script a user would write instead of ``cnnkeras run``: the peer of
benchmarks/overhead.py's whole-process comparison.

LeNet-5 (tanh, average pooling, 61,706 parameters) on an MNIST subset, trained with
Adam as cnnkeras' ``lenet5`` is, then evaluated on the test split and saved as .keras:
what ``cnnkeras run`` does, without tracking, records or plots.

    python benchmarks/peers/lenet_plain.py MNIST.npz OUT_DIR [--subset 20000] [--epochs 3] [--seed 0]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def lenet5() -> keras.Model:
    """LeNet-5 as cnnkeras' ``lenet5`` builds it (also the in-process peer in benchmarks/overhead.py)."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(6, 5, padding="same", activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Conv2D(16, 5, activation="tanh"),
        keras.layers.AveragePooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="tanh"),
        keras.layers.Dense(84, activation="tanh"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mnist")
    parser.add_argument("out")
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    with np.load(args.mnist, allow_pickle=False) as f:
        x, y, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    x, _, y, _ = train_test_split(x, y, train_size=args.subset, random_state=args.seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.1, random_state=args.seed, stratify=y)
    x_train, x_val, x_test = (a[..., None].astype("float32") / 255.0 for a in (x_train, x_val, x_test))

    model = lenet5()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs, batch_size=args.batch_size,
              verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    os.makedirs(args.out, exist_ok=True)
    model.save(os.path.join(args.out, "model.keras"))
    print(f"test_accuracy {accuracy:.4f} test_loss {loss:.4f}")


if __name__ == "__main__":
    main()
