"""The imagenet training recipe (issue 14): ImageNet data protocol on image folders, label smoothing, TF-style
RMSProp, warm-up + step-exp schedule, classifier dropout, weight EMA; its defaults, exact resume and errors."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dmc.compiler import build_network, load_network
from dmc.data import load_dataset
from dmc.errors import InvalidInputError
from dmc.genotype import published_genotypes
from dmc.runfolder import read_history
from dmc.train import TrainConfig, load_train_checkpoint, train
from dmc.train.loop import training_loss
from dmc.train.optim import (
    RMSpropTF,
    WeightEMA,
    add_classifier_dropout,
    build_optimizer,
    lr_factor,
)

DARTS_V2 = published_genotypes()["DARTS_V2"]
# the imagenet recipe on 2 x 6 images of 40x40 at image size 32: 3 held out, 3 steps of 3 images an epoch; DARTS's
# ImageNet network (two stride-2 stems) leaves 1x1 maps at 32 pixels, too small for its auxiliary head
TINY = dict(recipe="imagenet", image_size=32, channels=4, layers=3, batch_size=3, val_portion=0.25, lr=0.05,
            warmup_epochs=1, auxiliary=False, deterministic=True)


class _Killed(Exception):
    pass


def _folder(root, size=(40, 40), n=6, seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c, level in enumerate((60, 190)):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(rng.normal(level, 50, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return f"folder:{root}"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An ImageNet-layout folder (train/ and val/): 2 classes x 6 images of 40x40."""
    return _folder(tmp_path_factory.mktemp("imagenet-like"))


def _strip(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def test_folder_datasets_of_large_images_default_to_the_imagenet_recipe(tmp_path, images):
    large = _folder(tmp_path / "large", size=(80, 64), n=1)
    config = TrainConfig.for_dataset(large)
    assert config.recipe == "imagenet"
    assert (config.image_size, config.augment_policy, config.center_crop) == (224, "imagenet", 0.875)
    assert (config.style, config.channels, config.layers, config.epochs, config.batch_size) == \
        ("imagenet", 48, 14, 350, 256)
    assert (config.optimizer, config.momentum, config.rmsprop_decay, config.rmsprop_eps) == ("rmsprop", 0.9, 0.9, 1e-3)
    assert (config.schedule, config.warmup_epochs, config.lr_decay, config.lr_decay_epochs) == \
        ("step-exp", 5, 0.97, 2.4)
    assert config.lr == pytest.approx(0.016)
    assert (config.weight_decay, config.norm_weight_decay, config.label_smoothing) == (1e-5, False, 0.1)
    assert (config.dropout, config.ema_decay, config.drop_path, config.cutout) == (0.2, 0.9999, 0.0, 0)
    assert TrainConfig.for_dataset(large, batch_size=512).lr == pytest.approx(0.032)  # 0.016 per 256 images
    assert TrainConfig.for_dataset(large, batch_size=512, lr=0.1).lr == 0.1
    # small images, or a small --image-size, keep DARTS's CIFAR recipe; --recipe says otherwise
    assert TrainConfig.for_dataset(large, image_size=32).recipe == "darts"
    small = TrainConfig.for_dataset(images)
    assert (small.recipe, small.image_size, small.optimizer, small.schedule, small.lr) == \
        ("darts", 32, "sgd", "cosine", 0.025)
    assert (small.label_smoothing, small.dropout, small.ema_decay, small.augment_policy) == (0.0, 0.0, 0.0, "cifar")
    assert TrainConfig.for_dataset(images, recipe="imagenet").image_size == 224
    assert TrainConfig.for_dataset(images, image_size=64).recipe == "imagenet"
    assert TrainConfig.for_dataset("folder:/no/such/place").recipe == "darts"  # loading it says what is wrong
    # digits and CIFAR keep their 32x32 CIFAR-like data under the imagenet recipe
    digits = TrainConfig.for_dataset("digits", recipe="imagenet")
    assert (digits.augment_policy, digits.image_size, digits.optimizer, digits.epochs) == ("cifar", 32, "rmsprop", 30)
    assert TrainConfig.for_dataset("digits").recipe == "darts"


def test_the_imagenet_recipe_trains_and_resumes_exactly(tmp_path, images):
    config = dict(TINY, epochs=2)
    straight = train(DARTS_V2, TrainConfig.for_dataset(images, **config), tmp_path / "a")

    def kill(kind, **info):
        if kind == "step" and info["epoch"] == 1 and info["step"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        train(DARTS_V2, TrainConfig.for_dataset(images, **config), tmp_path / "b", on_event=kill)
    assert len(read_history(tmp_path / "b")) == 1
    resumed = train(None, TrainConfig(), tmp_path / "b", resume=True)

    a, b = (tmp_path / name for name in "ab")
    assert _strip(read_history(a)) == _strip(read_history(b))
    for name in ("best.pt", "last.pt"):
        x, y = load_train_checkpoint(a / name), load_train_checkpoint(b / name)
        assert x["epoch"] == y["epoch"] and x["best_epoch"] == y["best_epoch"] and x["ema"] == y["ema"]
        for weights in ("model", "train_model"):  # the EMA weights and the training weights
            for key, value in x[weights].items():
                assert torch.equal(value, y[weights][key]), (name, weights, key)
        for param, state in x["optimizer"]["state"].items():  # RMSProp's mean squares and momenta
            for key, value in state.items():
                assert torch.equal(value, y["optimizer"]["state"][param][key]), (name, param, key)
        assert x["scheduler"]["last_epoch"] == y["scheduler"]["last_epoch"]
    assert json.loads((a / "result.json").read_text()) == json.loads((b / "result.json").read_text())
    assert resumed.test_acc == straight.test_acc

    last = load_train_checkpoint(a / "last.pt")
    assert last["ema"] == {"updates": 6} and last["scheduler"]["last_epoch"] == 6  # 2 epochs x 3 steps
    assert last["config"]["recipe"] == "imagenet" and last["data"]["image_size"] == 32
    assert any(not torch.equal(value, last["train_model"][key]) for key, value in last["model"].items()
               if value.is_floating_point())  # the averaged weights are not the trained ones

    # best.pt / last.pt are the EMA network: what was evaluated is what loads (and exports)
    network = load_network(a / "last.pt").eval()
    test = load_dataset(images, image_size=32, policy="imagenet").test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        logits = network(x)
    assert (logits.argmax(1) == y).float().mean().item() == pytest.approx(straight.test_acc)
    assert F.cross_entropy(logits, y).item() == pytest.approx(read_history(a)[-1]["test_loss"], rel=1e-5)


def test_the_learning_rate_warms_up_then_decays_by_0_97_every_2_4_epochs(tmp_path, images):
    epochs, warmup, steps, peak = 7, 2, 3, 0.05
    train(DARTS_V2, TrainConfig.for_dataset(images, **dict(TINY, epochs=epochs, warmup_epochs=warmup)), tmp_path / "r")
    recorded = [r["lr"] for r in read_history(tmp_path / "r")]

    def expected(epoch):  # at the epoch's first step, counted over the run
        step = epoch * steps
        if step < warmup * steps:
            return peak * step / (warmup * steps)
        return peak * 0.97 ** math.floor(step / (2.4 * steps))

    assert recorded == pytest.approx([expected(e) for e in range(epochs)], rel=1e-12, abs=1e-15)
    assert recorded[:3] == pytest.approx([0.0, 0.025, 0.05])  # warm-up, then the peak
    assert recorded[3] == pytest.approx(0.05 * 0.97) and recorded[5] == pytest.approx(0.05 * 0.97 ** 2)
    # within an epoch too: the schedule moves every step
    config = TrainConfig.for_dataset(images, **dict(TINY, epochs=epochs, warmup_epochs=warmup))
    assert lr_factor(config, 4, steps) == pytest.approx(4 / 6)
    assert lr_factor(config, 7, steps) == 1.0 and lr_factor(config, 8, steps) == pytest.approx(0.97)


def test_cosine_with_warm_up_and_the_darts_default():
    config = TrainConfig(epochs=10, lr=0.1, lr_min=0.0, warmup_epochs=2)
    assert config.per_step_schedule and not TrainConfig().per_step_schedule
    assert lr_factor(config, 5, 10) == pytest.approx(0.25)
    assert lr_factor(config, 20, 10) == 1.0 and lr_factor(config, 29, 10) == 1.0  # cosine per epoch
    assert lr_factor(config, 60, 10) == pytest.approx((1 + math.cos(math.pi * 4 / 8)) / 2)


def test_label_smoothing_changes_the_loss_as_torch_does():
    torch.manual_seed(0)
    logits, aux, y = torch.randn(5, 4), torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])

    def smoothed(z, eps):  # (1 - eps) * NLL of the label + eps * mean over classes of -log p
        logp = torch.log_softmax(z, 1)
        return ((1 - eps) * -logp[torch.arange(5), y] + eps * -logp.mean(1)).mean()

    plain, _ = training_loss(logits, y, TrainConfig(label_smoothing=0.0))
    loss, out = training_loss(logits, y, TrainConfig(label_smoothing=0.1))
    assert out is logits and plain.item() == pytest.approx(F.cross_entropy(logits, y).item())
    assert loss.item() == pytest.approx(smoothed(logits, 0.1).item(), rel=1e-6)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.1).item(), rel=1e-6)
    assert loss.item() != pytest.approx(plain.item())
    both, _ = training_loss((logits, aux), y, TrainConfig(label_smoothing=0.1, auxiliary_weight=0.4))
    assert both.item() == pytest.approx((smoothed(logits, 0.1) + 0.4 * smoothed(aux, 0.1)).item(), rel=1e-6)


def test_rmsprop_follows_tensorflow_and_resumes_from_its_state():
    torch.manual_seed(0)
    w0, grads = torch.randn(3), [torch.randn(3) for _ in range(4)]
    lrs, decay, momentum, eps, wd = [0.1, 0.05, 0.05, 0.02], 0.9, 0.9, 1e-3, 1e-2

    w, ms, mom = w0.clone().double(), torch.ones(3, dtype=torch.double), torch.zeros(3, dtype=torch.double)
    for lr, g in zip(lrs, grads):  # tf.train.RMSPropOptimizer, with an L2 term in the loss
        g = g.double() + wd * w
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / torch.sqrt(ms + eps)
        w = w - mom

    def run(steps, start=None):
        p = torch.nn.Parameter(w0.clone() if start is None else start[0])
        opt = RMSpropTF([p], lrs[0], decay, momentum, eps, wd)
        if start is not None:
            opt.load_state_dict(start[1])
        for lr, g in steps:
            opt.param_groups[0]["lr"] = lr
            p.grad = g.clone()
            opt.step()
        return p.detach().clone(), opt.state_dict()

    full, _ = run(list(zip(lrs, grads)))
    assert torch.allclose(full.double(), w, rtol=1e-5, atol=1e-6)
    half = run(list(zip(lrs[:2], grads[:2])))
    resumed, _ = run(list(zip(lrs[2:], grads[2:])), start=half)
    assert torch.equal(resumed, full)


def test_weight_decay_leaves_batch_norm_parameters_alone_in_the_imagenet_recipe():
    network = build_network(DARTS_V2, channels=4, layers=3, style="imagenet", num_classes=2)
    optimizer = build_optimizer(network, TrainConfig.for_dataset("digits", recipe="imagenet"))
    decayed, plain = optimizer.param_groups
    assert (decayed["weight_decay"], plain["weight_decay"]) == (1e-5, 0.0)
    norm = {id(p) for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert norm and {id(p) for p in plain["params"]} == norm
    assert id(network.classifier.weight) in {id(p) for p in decayed["params"]}
    sgd = build_optimizer(network, TrainConfig())
    assert isinstance(sgd, torch.optim.SGD) and len(sgd.param_groups) == 1
    assert sgd.param_groups[0]["weight_decay"] == 3e-4


def test_weight_ema_averages_with_tensorflows_warm_up():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = WeightEMA(model, 0.9999)
    start = ema.network[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(4, 2))  # moves the batch-norm statistics and its counter
    ema.update(model)
    decay = 2 / 11  # min(0.9999, (1 + 1) / (10 + 1))
    assert torch.allclose(ema.network[0].weight, decay * start + (1 - decay) * model[0].weight)
    assert torch.allclose(ema.network[1].running_mean, (1 - decay) * model[1].running_mean)
    assert ema.network[1].num_batches_tracked.item() == 1 and ema.state_dict() == {"updates": 1}
    assert not ema.network.training and not any(p.requires_grad for p in ema.network.parameters())


def test_dropout_before_the_classifier_acts_in_training_only():
    network = build_network(DARTS_V2, channels=4, layers=3, num_classes=2)
    x = torch.randn(2, 3, 32, 32)
    network.eval()
    with torch.no_grad():
        before = network(x)
    handle = add_classifier_dropout(network, 0.5)
    seen = []
    network.classifier.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    with torch.no_grad():
        assert torch.equal(network(x), before)  # eval: no dropout
        network.train()
        network(x)
    assert (seen[-1] == 0).any()  # the pooled features the classifier read were dropped
    handle.remove()
    assert "dropout" not in json.dumps(list(network.state_dict()))


@pytest.mark.parametrize("flags,message", [
    (["--label-smoothing", "2"], "label_smoothing must be in [0, 1)"),
    (["--optimizer", "adam"], "optimizer must be one of sgd, rmsprop"),
    (["--schedule", "linear"], "schedule must be one of cosine, step-exp"),
    (["--recipe", "mnasnet"], "recipe must be one of darts, imagenet"),
    (["--ema-decay", "1"], "ema_decay must be in [0, 1)"),
    (["--dropout", "-0.1"], "dropout must be in [0, 1)"),
    (["--warmup-epochs", "-1"], "warmup_epochs must be >= 0"),
    (["--rmsprop-eps", "0"], "rmsprop_eps must be > 0"),
    (["--center-crop", "1.5"], "center_crop must be in (0, 1]"),
    (["--lr-decay", "0"], "lr_decay must be in (0, 1]"),
    (["--augment-policy", "autoaugment"], "augment_policy must be one of cifar, imagenet"),
    (["--dataset", "digits", "--augment-policy", "imagenet"], "augment_policy imagenet needs a folder:PATH dataset"),
    (["--dataset", "cifar10:/nowhere", "--image-size", "64"], "image_size must be 32 on cifar10"),
    (["--image-size", "0"], "image_size must be >= 1"),
])
def test_bad_recipe_settings_are_one_line_errors(cli, tmp_path, images, flags, message):
    dataset = [] if "--dataset" in flags else ["--dataset", images]
    result = cli("train", "DARTS_V2", *dataset, *flags, "-o", str(tmp_path / "run"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_recipe_settings_in_python_and_in_run_files():
    with pytest.raises(InvalidInputError, match="label_smoothing must be in"):
        TrainConfig.for_dataset("digits", label_smoothing=1.0)
    with pytest.raises(InvalidInputError, match="run/config.json: ema_decay: expected a finite number"):
        TrainConfig.from_dict({"ema_decay": "high"}, "run/config.json")
    assert TrainConfig.from_dict({"epochs": 3}).recipe == "darts"  # run folders of earlier versions: DARTS's


def test_cli_trains_with_the_imagenet_recipe_and_resumes(cli, tmp_path, images):
    run = tmp_path / "run"
    args = ["--recipe", "imagenet", "--image-size", "32", "--channels", "4", "--layers", "3", "--batch-size", "3",
            "--val-portion", "0.25", "--epochs", "1", "--warmup-epochs", "1", "--no-auxiliary", "--deterministic"]
    result = cli("train", "DARTS_V2", "--dataset", images, "--out", str(run), *args)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())["config"]
    assert (saved["recipe"], saved["optimizer"], saved["schedule"], saved["ema_decay"]) == \
        ("imagenet", "rmsprop", "step-exp", 0.9999)
    assert saved["lr"] == pytest.approx(0.016 * 3 / 256)
    again = cli("train", "--resume", str(run))
    assert again.exit_code == 0 and "top-1 test accuracy" in again.stdout
    small = cli("train", "DARTS_V2", "--dataset", images, "--out", str(tmp_path / "aux"),
                *[a for a in args if a != "--no-auxiliary"])
    assert small.exit_code == 2 and "auxiliary head gets 1x1 feature maps" in small.stderr


def test_a_classifier_with_its_own_dropout_gets_none_added():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(4, 2))

    assert add_classifier_dropout(Net(), 0.5) is None
    with pytest.raises(InvalidInputError, match="no classifier") as info:
        add_classifier_dropout(torch.nn.Linear(2, 2), 0.5)
    assert info.value.hint == "train with dropout 0"
    assert info.value.cli_text().endswith("(hint: train with --dropout 0)")
