from __future__ import annotations

import math

import pytest
import torch

from oodbench_eoe.score import eoe_score


def test_eoe_score_by_hand():
    # 2-d: image at 0°, ID label at 0°, outlier label at 90°; T = 1, β = 0.25
    image = torch.tensor([[1.0, 0.0]])
    id_f = torch.tensor([[1.0, 0.0]])
    out = torch.tensor([[0.0, 1.0]])
    p_id = math.e / (math.e + 1)  # softmax([cos 1, cos 0])
    expected = p_id - 0.25 * (1 - p_id)
    assert eoe_score(image, id_f, out, 1.0, 0.25)[0] == pytest.approx(expected)


def test_eoe_score_ranks_outlier_like_images_lower():
    id_f = torch.tensor([[1.0, 0.0, 0.0]])
    out = torch.tensor([[0.0, 1.0, 0.0]])
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.3, 1.0, 0.0]]), dim=1)
    scores = eoe_score(images, id_f, out, 1.0, 0.25)
    assert scores[0] > scores[1]


def test_beta_zero_is_mcm_over_the_union():
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 5), dim=1)
    id_f = torch.nn.functional.normalize(torch.randn(3, 5), dim=1)
    out = torch.nn.functional.normalize(torch.randn(2, 5), dim=1)
    probs = torch.softmax(image.double() @ torch.cat([id_f, out]).double().T, dim=1)
    assert eoe_score(image, id_f, out, 1.0, 0.0) == pytest.approx(
        probs[:, :3].max(dim=1).values.numpy())
