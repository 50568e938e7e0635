"""The two smoke-test models: the classic TensorFlow CIFAR-10 tutorial network, and a small modern residual one."""

from __future__ import annotations

from typing import Any

MODELS = ("tutorial", "fast")
# Input side per model: the tutorial trains on 24x24 crops, the fast net on padded-and-cropped 32x32 images.
INPUT_SIZE = {"tutorial": 24, "fast": 32}


def build(name: str, num_classes: int = 10) -> Any:
    """A Keras model taking float32 NHWC images (already normalised) and returning float32 logits."""
    if name == "tutorial":
        return _tutorial(num_classes)
    if name == "fast":
        return _fast(num_classes)
    raise ValueError(f"unknown model {name!r}")


def _tutorial(num_classes: int) -> Any:
    """cifar10.inference from tensorflow/models: conv5x5x64, pool 3/2, conv5x5x64, pool 3/2, 384, 192, 10.

    The two LRN layers are left out (the issue's layer list has none; Keras has no LRN layer and they cost time
    without measurable gain). Weight decay 0.004 * l2_loss (= sum(w^2)/2) on the two hidden dense layers, as in
    the tutorial, is keras L2(0.002).
    """
    import keras
    from keras import layers

    l2 = keras.regularizers.L2(0.002)
    size = INPUT_SIZE["tutorial"]
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            layers.Conv2D(64, 5, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(3, 2, padding="same", name="pool1"),
            layers.Conv2D(64, 5, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(3, 2, padding="same", name="pool2"),
            layers.Flatten(),
            layers.Dense(384, activation="relu", kernel_regularizer=l2, name="local3"),
            layers.Dense(192, activation="relu", kernel_regularizer=l2, name="local4"),
            layers.Dense(num_classes, name="softmax_linear"),
            layers.Activation("linear", dtype="float32", name="logits"),  # float32 logits under mixed precision
        ],
        name="tutorial",
    )


def _fast(num_classes: int) -> Any:
    """A small ResNet in the spirit of Myrtle's ResNet-9 / airbench, narrowed to fit a CPU's time budget:
    conv-BN-ReLU stages that pool early, two residual blocks, global max-pool, a scaled linear head."""
    import keras
    from keras import layers

    def conv_bn(x: Any, width: int) -> Any:
        x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    def residual(x: Any, width: int) -> Any:
        return layers.Add()([x, conv_bn(conv_bn(x, width), width)])

    inputs = keras.Input((INPUT_SIZE["fast"], INPUT_SIZE["fast"], 3))
    x = layers.MaxPooling2D(2)(conv_bn(inputs, 32))  # 16x16
    x = layers.MaxPooling2D(2)(conv_bn(x, 64))  # 8x8
    x = residual(x, 64)
    x = layers.MaxPooling2D(2)(conv_bn(x, 128))  # 4x4
    x = residual(x, 128)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(num_classes, use_bias=False)(x)
    x = layers.Rescaling(0.125)(x)  # a cooler softmax at the start trains faster (Page's ResNet-9 trick)
    outputs = layers.Activation("linear", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fast")


def layer_macs(model: Any) -> list[int]:
    """Multiply-adds per image of each conv and dense layer, in order; the rest (bias, ReLU, pooling) is noise."""
    from keras import layers

    macs = []
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, oh, ow, _ = layer.output.shape
            macs.append(oh * ow * kh * kw * cin * cout)
        elif isinstance(layer, layers.Dense):
            cin, cout = layer.kernel.shape
            macs.append(cin * cout)
    return macs


def forward_flops(model: Any) -> int:
    """Forward FLOPs per image, 2 per multiply-add: 36,941,568 for the tutorial model (counted layer by layer)."""
    return 2 * sum(layer_macs(model))


def train_flops(model: Any) -> int:
    """Training FLOPs per image: the forward pass, the weight gradients (as many MACs again) and the input
    gradients (again), except for the first layer, whose input is the images: nothing needs their gradient and
    TensorFlow does not compute it. 105,295,104 for the tutorial model (counted layer by layer)."""
    macs = layer_macs(model)
    return 2 * (3 * sum(macs) - macs[0])
