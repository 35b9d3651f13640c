"""The seed rows S1-S12 that zoo entries cite, worded as in docs/seeds.md (a test checks the two
agree); shipped in the package so `convzoo models NAME` works from a wheel."""

SEEDS = {
    "S1": {
        "system": "a Fashion-MNIST convnet written by hand",
        "notes": "000",
        "architecture": (
            "one 3x3 convolution with 10 filters (stride 1, SAME padding, ReLU), 2x2 max pooling, "
            "flatten to 14x14x10, a 100-unit ReLU layer, then 10 logits scored with softmax "
            "cross-entropy"
        ),
        "recipe": (
            "Glorot-uniform kernels and zero biases; plain SGD at 0.01 with batches of 128 for 20 "
            "epochs; each update is a hand-written GradientTape step"
        ),
        "figure": "loss curves and validation accuracy",
    },
    "S2": {
        "system": "the S1 convnet rebuilt with Keras layers",
        "notes": "000",
        "architecture": (
            "Conv2D(10, 3x3, same, relu), MaxPooling2D, Flatten, Dense(100, relu), Dense(10, softmax)"
        ),
        "recipe": (
            "Adam with categorical cross-entropy and accuracy; a second version puts Dropout between "
            "the convolutional and the dense part to curb over-fitting"
        ),
        "figure": "loss and accuracy curves without and with dropout",
    },
    "S3": {
        "system": "the MNIST convnet of \"Learning TensorFlow\", chapter 4",
        "notes": "001, 002",
        "architecture": (
            "5x5 convolution with 32 filters (SAME, ReLU), 2x2 max pooling, 5x5 convolution with 64 "
            "filters, 2x2 max pooling, flatten 7x7x64, a 1024-unit ReLU layer, dropout keeping half "
            "the units, 10 outputs"
        ),
        "recipe": (
            "Adam at 1e-4, mini-batches of 50 for 5,000 steps; weights from a truncated normal (std "
            "0.1), biases 0.1; a shuffled, repeating tf.data input"
        ),
        "figure": "the cost printed every 100 steps, near 0.2 after 1,000",
    },
    "S4": {
        "system": "a CIFAR-10 classifier",
        "notes": "001, 002",
        "architecture": (
            "the same convolution and pooling pattern on 32x32 colour images: 5x5 convolutions of 32,"
            " 64 and 128 filters, each pooled, a 512-unit dense layer with dropout, 10 outputs"
        ),
        "recipe": "Adam, one-hot labels",
        "figure": "a pointer to the \"are we there yet\" leaderboard, whose best methods pass 95%",
    },
    "S5": {
        "system": "a confusion matrix of the predictions",
        "notes": "001",
        "architecture": "one row per true class, one column per predicted class",
        "recipe": "counted from the model's predictions on the test set",
        "figure": "the usual confusions read off it, such as 5 taken for 3 and 9 for 4 or 7",
    },
    "S6": {
        "system": "a multi-class perceptron in plain NumPy",
        "notes": "003",
        "architecture": "flatten the 784 pixels, a 100-unit sigmoid layer, 10 softmax outputs",
        "recipe": (
            "mini-batch SGD at 0.1 with batches of 256 for 40 epochs, optional L1/L2 penalties; a "
            "stratified 80/20 train/validation split of the 60,000 training images (random_state 42)"
        ),
        "figure": "validation accuracy 0.815",
    },
    "S7": {
        "system": "handling the Fashion-MNIST data",
        "notes": "003, 000",
        "architecture": (
            "the ten class names: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, "
            "Sneaker, Bag, Ankle boot"
        ),
        "recipe": (
            "pixels divided by 255, reshaped to (-1, 28, 28, 1), one-hot targets; a sample drawn in "
            "gray with imshow; class balance checked with bincount"
        ),
        "figure": "6,000 training images per class",
    },
    "S8": {
        "system": "the small cats-vs-dogs convnet of \"Deep Learning with Python\", section 5.2",
        "notes": "004",
        "architecture": (
            "150x150 colour input; four 3x3 ReLU convolutions of 32, 64, 128 and 128 filters, each "
            "followed by 2x2 max pooling; flatten, a 512-unit ReLU layer, one sigmoid output"
        ),
        "recipe": (
            "RMSprop at 1e-4 with binary cross-entropy; images scaled by 1/255; batches of 20, 30 "
            "epochs of 100 steps; saved as cats_and_dogs_small_1.h5"
        ),
        "figure": "training curves that show over-fitting",
    },
    "S9": {
        "system": "S8 with augmentation and dropout",
        "notes": "004",
        "architecture": "S8 with Dropout(0.5) right after Flatten",
        "recipe": (
            "random rotations up to 40 degrees, width and height shifts of 0.2, shear 0.2, zoom 0.2, "
            "horizontal flips; batches of 32 for 100 epochs; saved as cats_and_dogs_small_2.h5"
        ),
        "figure": "about 82% validation accuracy in the book",
    },
    "S10": {
        "system": "the cats-vs-dogs data split",
        "notes": "004",
        "architecture": (
            "from Kaggle's training folder (cat.N.jpg, dog.N.jpg): images 0-999 of each class go to "
            "train, 1000-1499 to validation, 1500-1999 to test, each split holding cats/ and dogs/ "
            "folders"
        ),
        "recipe": "none",
        "figure": "1,000 / 500 / 500 images per class",
    },
    "S11": {
        "system": "VGG16 as a frozen feature extractor, then fine-tuned",
        "notes": "004",
        "architecture": (
            "the convolutional base of VGG16 (ImageNet weights, no top, 150x150x3 input) gives "
            "4x4x512 features to a small dense classifier; fine-tuning unfreezes the base's top block"
        ),
        "recipe": "none",
        "figure": "about 90% with frozen features and 97% fine-tuned, in the book",
    },
    "S12": {
        "system": "the low-level building blocks",
        "notes": "000",
        "architecture": (
            "cross-correlation against convolution (scipy's correlate and correlate2d in valid, same "
            "and full modes), tf.nn.conv2d, tf.nn.max_pool2d, ReLU, padding and stride"
        ),
        "recipe": "none",
        "figure": "small worked arrays",
    },
}
