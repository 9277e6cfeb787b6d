"""Numbers shared by training, evaluation and the canvas: named once, used everywhere."""

IMAGE_SIZE = 28  # MNIST images are 28x28 pixels
NUM_CLASSES = 10
MNIST_TRAIN_IMAGES = 60_000  # images in MNIST's training set
MNIST_TEST_IMAGES = 10_000  # and in its test set
# Mean and standard deviation of MNIST training pixels scaled to [0, 1] (the values the
# PyTorch tutorials use); the canvas is normalised exactly like the training set.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
# MNIST digits are scaled to fit a 20x20 box, then centred by centre of mass in 28x28.
DIGIT_BOX = 20
# Where MNIST puts a digit's centre of mass (row, column pixel index): measured mean over the
# training set is (13.996, 14.007), i.e. pixel 14, not the geometric centre 13.5.
MNIST_CENTER_OF_MASS = 14.0
# How a checkpoint file may store float32 weights: float16 halves the file (mnist.checkpoint widens them
# to float32 on loading). Each tensor's dtype is in the safetensors header, so no record field repeats it.
WEIGHT_STORAGES = ("float32", "float16")
