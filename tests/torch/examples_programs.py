"""Short programs in the style of pytorch/examples' mnist, vae, dcgan, regression and
word_language_model (the same model architectures, the same API calls, written here), each a
function of `api`: a namespace holding `torch`, `nn`, `F`, `optim` and `lr_scheduler`, either
PyTorch's modules or kinone.torch's. So one program runs in both frameworks.

Each program takes its batches as NumPy arrays (made into tensors with `torch.from_numpy`),
an initial state dict (NumPy arrays; None: the model's own initialization) and, where the
example draws random numbers during training (the VAE's noise, the DCGAN's latent vectors),
those draws as arrays; it returns the per-step losses and the initial state it started from.

Where the example makes a call Kinone lacks today, the program writes the same computation
with calls both have and names the example's call in a comment ("example:"); test_examples.py
checks those calls separately (test_the_calls_the_examples_make).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np


def kinone_api() -> SimpleNamespace:
    import kinone.torch as torch
    import kinone.torch.nn as nn
    import kinone.torch.nn.functional as F
    import kinone.torch.optim as optim
    from kinone.torch.optim import lr_scheduler

    return SimpleNamespace(torch=torch, nn=nn, F=F, optim=optim, lr_scheduler=lr_scheduler, name="kinone")


def torch_api() -> SimpleNamespace:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim
    from torch.optim import lr_scheduler

    return SimpleNamespace(torch=torch, nn=nn, F=F, optim=optim, lr_scheduler=lr_scheduler, name="torch")


def state_of(model) -> dict:
    """A model's state dict as NumPy arrays (what passes from one framework to the other).
    Kinone's state_dict() holds the arrays themselves, PyTorch's holds Tensors."""
    return {
        key: np.array(value if isinstance(value, np.ndarray) else value.detach().cpu().numpy())
        for key, value in model.state_dict().items()
    }


def start_from(api, model, state: dict | None) -> dict:
    """Load `state` into `model` (keys must match); the state the model now holds."""
    if state is not None:
        model.load_state_dict({key: api.torch.from_numpy(value.copy()) for key, value in state.items()})
    return state_of(model)


# ----------------------------------------------------------------------------- mnist


def mnist(api, batches, state=None, dropout=True, lr=1.0, gamma=0.7):
    """mnist/main.py: Net, Adadelta, StepLR, nll_loss; then its test loop (summed loss, argmax,
    eq/view_as accuracy). Returns (losses, initial state, (test loss, correct))."""
    torch, nn, F, optim = api.torch, api.nn, api.F, api.optim

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = self.dropout2(x)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    device = torch.device("cpu")
    model = Net().to(device)
    initial = start_from(api, model, state)
    optimizer = optim.Adadelta(model.parameters(), lr=lr)
    scheduler = api.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
    model.train(dropout)  # eval mode (no dropout) for the comparison: Net has no batch norm
    losses = []
    for images, labels in batches:
        data, target = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        scheduler.step()  # the example steps it once an epoch; here each step is an epoch
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in batches:
            data, target = torch.from_numpy(images), torch.from_numpy(labels)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    return losses, initial, (test_loss, correct)


# ----------------------------------------------------------------------------- vae


def vae(api, batches, state=None, noises=None, save_image=None):
    """vae/main.py: VAE (fc1, fc21, fc22, fc3, fc4), Adam 1e-3, binary_cross_entropy summed plus
    the KL term; `noises`: the reparameterization's draws (None: torch.randn_like as the
    example); `save_image`: torchvision.utils.save_image, to write the reconstruction grid
    as the example's test does (to the path `save_image.path`)."""
    torch, nn, F, optim = api.torch, api.nn, api.F, api.optim
    draws = iter(noises) if noises is not None else None

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 400)
            self.fc21 = nn.Linear(400, 20)
            self.fc22 = nn.Linear(400, 20)
            self.fc3 = nn.Linear(20, 400)
            self.fc4 = nn.Linear(400, 784)

        def encode(self, x):
            h1 = F.relu(self.fc1(x))
            return self.fc21(h1), self.fc22(h1)

        def reparameterize(self, mu, logvar):
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(std) if draws is None else torch.from_numpy(next(draws))
            return mu + eps * std

        def decode(self, z):
            h3 = F.relu(self.fc3(z))
            return torch.sigmoid(self.fc4(h3))

        def forward(self, x):
            mu, logvar = self.encode(x.view(-1, 784))
            z = self.reparameterize(mu, logvar)
            return self.decode(z), mu, logvar

    def loss_function(recon_x, x, mu, logvar):
        BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
        KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return BCE + KLD

    model = VAE()
    initial = start_from(api, model, state)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    losses = []
    for images in batches:
        data = torch.from_numpy(images)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        optimizer.step()
        losses.append(loss.item() / len(data))
    if save_image is not None:
        model.eval()
        with torch.no_grad():
            data = torch.from_numpy(batches[0])
            recon_batch, mu, logvar = model(data)
            n = min(data.size(0), 8)
            comparison = torch.cat([data[:n], recon_batch.view(len(data), 1, 28, 28)[:n]])
            save_image(comparison.cpu(), save_image.path, nrow=n)
    return losses, initial


# ----------------------------------------------------------------------------- dcgan


def dcgan(api, reals, noises, states=None, nz=16, ngf=8, ndf=8, nc=3, lr=0.0002, beta1=0.5):
    """dcgan/main.py: Generator (ConvTranspose2d, BatchNorm2d, ReLU, Tanh) and Discriminator
    (Conv2d, LeakyReLU, BatchNorm2d, Sigmoid) on 64x64 images, weights_init, BCELoss, two Adams;
    each step updates D on a real and a fake batch, then G. Returns (losses as
    (errD, errG, D_x, D_G_z1, D_G_z2) per step, initial states (G, D))."""
    torch, nn, optim = api.torch, api.nn, api.optim

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)

    class Generator(nn.Module):
        def __init__(self, ngpu):
            super().__init__()
            self.ngpu = ngpu
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 8),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 4),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                nn.Tanh(),
            )

        def forward(self, input):
            # example: if (input.is_cuda or input.is_xpu) and self.ngpu > 1: nn.parallel.data_parallel(...)
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self, ngpu):
            super().__init__()
            self.ngpu = ngpu
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
                nn.Sigmoid(),
            )

        def forward(self, input):
            output = self.main(input)
            return output.view(-1, 1).squeeze(1)

    device = torch.device("cpu")
    netG, netD = Generator(1).to(device), Discriminator(1).to(device)
    netG.apply(weights_init)
    netD.apply(weights_init)
    initial = (start_from(api, netG, states and states[0]), start_from(api, netD, states and states[1]))
    criterion = nn.BCELoss()
    real_label, fake_label = 1, 0
    optimizerD = optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=lr, betas=(beta1, 0.999))
    losses = []
    for images, noise_array in zip(reals, noises):
        netD.zero_grad()
        real_cpu = torch.from_numpy(images).to(device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.from_numpy(noise_array).to(device)  # example: torch.randn(batch_size, nz, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        losses.append((errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
    return losses, initial


# ----------------------------------------------------------------------------- regression


def regression(api, xs, W_target, b_target, state=None, lr=0.1):
    """regression/main.py: a Linear(4, 1) fitted to a degree-4 polynomial with smooth_l1_loss and
    a hand-written SGD step. `xs`: the random draws, one array per batch."""
    torch, F = api.torch, api.F
    POLY_DEGREE = 4
    W_target, b_target = torch.from_numpy(W_target), torch.from_numpy(b_target)

    def make_features(x):
        x = x.unsqueeze(1)
        return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)

    def f(x):
        return x @ W_target + b_target.item()  # example: x.mm(W_target) + b_target.item()

    fc = torch.nn.Linear(W_target.size(0), 1)
    initial = start_from(api, fc, state)
    losses = []
    for random in xs:
        batch_x = make_features(torch.from_numpy(random))
        batch_y = f(batch_x)
        fc.zero_grad()
        output = F.smooth_l1_loss(fc(batch_x), batch_y)
        losses.append(output.item())
        output.backward()
        for param in fc.parameters():
            with torch.no_grad():  # example: param.data.add_(-lr * param.grad) (Kinone: .data is the array)
                param.add_(-lr * param.grad)
    return losses, initial


# ----------------------------------------------------------------------------- word_language_model


def language_model_classes(api):
    """word_language_model/model.py's RNNModel, PositionalEncoding and TransformerModel."""
    torch, nn, F = api.torch, api.nn, api.F

    class RNNModel(nn.Module):
        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
            super().__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            if rnn_type in ["LSTM", "GRU"]:
                self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            else:
                nonlinearity = {"RNN_TANH": "tanh", "RNN_RELU": "relu"}[rnn_type]
                self.rnn = nn.RNN(ninp, nhid, nlayers, nonlinearity=nonlinearity, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.encoder.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            output = self.drop(output)
            decoded = self.decoder(output)
            decoded = decoded.view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())

            # example: weight.new_zeros(self.nlayers, bsz, self.nhid)
            def zeros():
                return torch.zeros(self.nlayers, bsz, self.nhid, dtype=weight.dtype)

            return (zeros(), zeros()) if self.rnn_type == "LSTM" else zeros()

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super().__init__()
            self.dropout = nn.Dropout(p=dropout)
            position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
            div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
            # example: pe = torch.zeros(max_len, d_model); pe[:, 0::2] = torch.sin(...); pe[:, 1::2] = torch.cos(...)
            pe = torch.stack([torch.sin(position * div_term), torch.cos(position * div_term)], dim=2)
            pe = pe.reshape(max_len, d_model)
            pe = pe.unsqueeze(0).transpose(0, 1)
            self.register_buffer("pe", pe)

        def forward(self, x):
            x = x + self.pe[: x.size(0), :]
            return self.dropout(x)

    class TransformerModel(nn.Transformer):
        def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
            super().__init__(d_model=ninp, nhead=nhead, dim_feedforward=nhid, num_encoder_layers=nlayers)
            self.model_type = "Transformer"
            self.src_mask = None
            self.pos_encoder = PositionalEncoding(ninp, dropout)
            self.input_emb = nn.Embedding(ntoken, ninp)
            self.ninp = ninp
            self.decoder = nn.Linear(ninp, ntoken)
            self.init_weights()

        def _generate_square_subsequent_mask(self, sz):
            # example: torch.log(torch.tril(torch.ones(sz, sz))), the same 0 / -inf mask
            return nn.Transformer.generate_square_subsequent_mask(sz)

        def init_weights(self):
            initrange = 0.1
            nn.init.uniform_(self.input_emb.weight, -initrange, initrange)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -initrange, initrange)

        def forward(self, src, has_mask=True):
            if has_mask:
                if self.src_mask is None or self.src_mask.size(0) != len(src):
                    self.src_mask = self._generate_square_subsequent_mask(len(src))
            else:
                self.src_mask = None
            src = self.input_emb(src) * math.sqrt(self.ninp)
            src = self.pos_encoder(src)
            output = self.encoder(src, mask=self.src_mask)
            output = self.decoder(output)
            return F.log_softmax(output, dim=-1)

    return RNNModel, PositionalEncoding, TransformerModel


def batchify(api, ids: np.ndarray, bsz: int):
    """main.py's batchify (example: data.narrow(0, 0, nbatch * bsz) and .t())."""
    data = api.torch.from_numpy(ids)
    nbatch = data.size(0) // bsz
    data = data[: nbatch * bsz]
    return data.view(bsz, -1).transpose(0, 1).contiguous()


def word_language_model(
    api,
    ids,
    model_type="LSTM",
    state=None,
    steps=3,
    lr=20.0,
    clip=0.25,
    bptt=5,
    bsz=4,
    ntokens=30,
    dropout=0.0,
    use_optimizer=False,
):
    """main.py's train(): batchify, get_batch, repackage_hidden, NLLLoss, gradient clipping
    (when the framework has torch.nn.utils.clip_grad_norm_), then the example's SGD step
    (p.add_(p.grad, alpha=-lr) under no_grad) or AdamW (--use-optimizer)."""
    torch, nn = api.torch, api.nn
    RNNModel, _, TransformerModel = language_model_classes(api)
    if model_type == "Transformer":
        model = TransformerModel(ntokens, 8, 2, 16, 2, dropout)
    else:
        model = RNNModel(model_type, ntokens, 8, 8, 2, dropout, tie_weights=model_type == "LSTM")
    initial = start_from(api, model, state)
    if model_type == "Transformer" and dropout == 0.0:
        model.eval()  # nn.Transformer's own layers keep their default dropout 0.1
    else:
        model.train()
    criterion = nn.NLLLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr) if use_optimizer else None
    train_data = batchify(api, ids, bsz)

    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    def get_batch(source, i):
        seq_len = min(bptt, len(source) - 1 - i)
        return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].view(-1)

    clip_grad_norm_ = getattr(getattr(nn, "utils", None), "clip_grad_norm_", None)
    hidden = None if model_type == "Transformer" else model.init_hidden(bsz)
    losses = []
    for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
        if batch == steps:
            break
        data, targets = get_batch(train_data, i)
        if optimizer is not None:
            optimizer.zero_grad()
        else:
            model.zero_grad()
        if model_type == "Transformer":
            output = model(data).view(-1, ntokens)
        else:
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        if clip_grad_norm_ is not None and clip is not None:  # example: always torch.nn.utils.clip_grad_norm_
            clip_grad_norm_(model.parameters(), clip)
        if optimizer is not None:
            optimizer.step()
        else:
            with torch.no_grad():  # example: p.data.add_(p.grad, alpha=-lr) (Kinone: .data is the array)
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
        losses.append(loss.item())
    return losses, initial
