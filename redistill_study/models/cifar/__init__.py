"""The CIFAR model family of the distillation literature (RepDistiller / mdistiller variants)."""

from . import mobilenetv2, resnet, shufflenet, vgg, wrn  # noqa: F401  (registration)
