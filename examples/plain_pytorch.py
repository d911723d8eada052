"""SAR and HAL in a plain PyTorch training loop: no MMSeg, no MMEngine.

    python examples/plain_pytorch.py --steps 20

A tiny segmenter (two convolutions and a 1x1 classifier) learns a
synthetic two-class-plus-tail task; ``SARLoss`` pulls the classifier's input
features to the semantic anchors and ``HALLoss`` to fixed unit anchors. The
losses need the classifier's *input* (the features) and, for SAR, the
classifier itself.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn

from sar_plugin.losses import HALLoss, SARLoss


class TinySegmenter(nn.Module):

    def __init__(self, channels: int = 16, num_classes: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels),
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels), nn.ReLU())
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, images):
        feat = self.body(images)
        return feat, self.classifier(feat)


def batch(gen, n=8, size=16):
    """Images whose colour says the class; class 2 is rare (the tail)."""
    label = torch.randint(0, 2, (n, size, size), generator=gen)
    label[:, :2, :2] = 2
    label[0, -1] = 255  # an ignored row
    colours = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    images = colours[label.clamp(max=2)].permute(0, 3, 1, 2)
    return images + 0.5 * torch.randn(images.shape, generator=gen), label


def main(steps: int = 200, seed: int = 0) -> list:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = TinySegmenter()
    sar = SARLoss(num_classes=3, channels=16)
    hal = HALLoss(num_classes=3, channels=16, loss_weight=0.1)
    params = list(model.parameters()) + list(sar.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    history = []
    for step in range(steps):
        images, label = batch(gen)
        feat, logits = model(images)
        losses = {'loss_ce': F.cross_entropy(logits, label, ignore_index=255)}
        losses.update(sar(feat, label, classifier=model.classifier))
        losses['loss_hal'] = hal(feat, label)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
        if step % 5 == 0 or step == steps - 1:
            print(f'step {step:3d}  ' + '  '.join(
                f"{k} {v.item():.4f}" for k, v in losses.items()) +
                f'  gate {"open" if bool(sar.gate_open) else "closed"}')
    return history


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    main(args.steps, args.seed)
