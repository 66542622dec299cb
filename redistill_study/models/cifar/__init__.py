"""The CIFAR model family of the distillation literature (RepDistiller / mdistiller variants)."""
