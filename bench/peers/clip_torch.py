"""The peer of clipcrawl's embed path: a ViT-B/32-shaped CLIP in PyTorch eval mode (Debian's
python3-torch on OpenBLAS), with random weights from a seed, built as Hugging Face's modeling_clip
builds CLIPVisionModelWithProjection and CLIPTextModelWithProjection: conv patch embedding, class
token, learnt positions, pre-LN residual attention blocks with QuickGELU, post-LN on the class
token (vision) or final LN with pooling at the end-of-text token (text), bias-free projections.

    clip_torch.py export OUT_DIR --vocab-size N --eot-id ID [--seed S]
        writes OUT_DIR/onnx/vision_model.onnx (pixel_values -> image_embeds) and
        OUT_DIR/onnx/text_model.onnx (input_ids [batch, 77] -> text_embeds), opset 14, as
        Hugging Face's ONNX exports name them; prints {"seconds": s} as JSON.

    clip_torch.py serve --vocab-size N --eot-id ID --threads T --preprocessor-config P [--seed S]
                        [--device cpu|cuda[:N]]
        rebuilds the same weights, then answers one JSON command a line on stdin with one JSON
        line on stdout, so the bench can alternate rounds with clipcrawl's side:
          {"op": "blas"}                                      -> which BLAS library is loaded
          {"op": "vision", "pixels": F, "count": N, "batch": B, "out": O}
              forward on a float32 [N, 3, 224, 224] file, embeddings to O
          {"op": "vision_pil", "images": [paths], "batch": B, "out": O}
              PIL + numpy preprocessing as CLIPImageProcessor does it (with P), then the forward
          {"op": "text", "ids": F, "count": N, "batch": B, "out": O}
              forward on an int64 [N, 77] file of token ids
          {"op": "gemm", "m": M, "k": K, "n": N, "rounds": R}
              R timed nn.Linear(K, N) forwards on an [M, K] input: the BLAS rate the towers'
              MatMuls can reach here; answers {"items": R, "round_seconds": [s, ...]}
        each timed op answers {"items": n, "seconds": s}; vision adds "cpu_seconds", the process's
        CPU time over all its threads (spin-waiting included).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn

IMAGE_SIZE = 224
PATCH_SIZE = 32
VISION_WIDTH = 768
VISION_LAYERS = 12
VISION_HEADS = 12
TEXT_WIDTH = 512
TEXT_LAYERS = 12
TEXT_HEADS = 8
CONTEXT_LENGTH = 77
PROJECTION_DIM = 512
LAYER_NORM_EPS = 1e-5
QK_SCALE = 2


class QuickGelu(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """modeling_clip's CLIPAttention: separate q, k, v projections, scaled dot product."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.scale = self.head_dim**-0.5
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x, mask=None):
        batch, length, width = x.shape

        def split(t):
            return t.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x) * self.scale)
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        weights = torch.matmul(q, k.transpose(-1, -2))
        if mask is not None:
            weights = weights + mask
        weights = torch.softmax(weights, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, width)
        return self.out_proj(out)


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.self_attn = Attention(width, heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(width, 4 * width)
        self.act = QuickGelu()
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.fc2(self.act(self.fc1(self.layer_norm2(x))))


class VisionTower(nn.Module):
    def __init__(self):
        super().__init__()
        patches = (IMAGE_SIZE // PATCH_SIZE) ** 2
        self.patch_embedding = nn.Conv2d(3, VISION_WIDTH, PATCH_SIZE, PATCH_SIZE, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(VISION_WIDTH))
        self.position_embedding = nn.Parameter(torch.empty(patches + 1, VISION_WIDTH))
        self.pre_layrnorm = nn.LayerNorm(VISION_WIDTH, eps=LAYER_NORM_EPS)
        self.layers = nn.ModuleList(Block(VISION_WIDTH, VISION_HEADS) for _ in range(VISION_LAYERS))
        self.post_layernorm = nn.LayerNorm(VISION_WIDTH, eps=LAYER_NORM_EPS)
        self.visual_projection = nn.Linear(VISION_WIDTH, PROJECTION_DIM, bias=False)

    def forward(self, pixel_values):
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixel_values.shape[0], 1, -1)
        x = torch.cat([cls, patches], dim=1) + self.position_embedding
        x = self.pre_layrnorm(x)
        for layer in self.layers:
            x = layer(x)
        return self.visual_projection(self.post_layernorm(x[:, 0, :]))


class TextTower(nn.Module):
    def __init__(self, vocab_size, eot_id):
        super().__init__()
        self.eot_id = eot_id
        self.token_embedding = nn.Embedding(vocab_size, TEXT_WIDTH)
        self.position_embedding = nn.Parameter(torch.empty(CONTEXT_LENGTH, TEXT_WIDTH))
        self.layers = nn.ModuleList(Block(TEXT_WIDTH, TEXT_HEADS) for _ in range(TEXT_LAYERS))
        self.final_layer_norm = nn.LayerNorm(TEXT_WIDTH, eps=LAYER_NORM_EPS)
        self.text_projection = nn.Linear(TEXT_WIDTH, PROJECTION_DIM, bias=False)
        causal = torch.full((CONTEXT_LENGTH, CONTEXT_LENGTH), float("-inf")).triu(1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def forward(self, input_ids):
        x = self.token_embedding(input_ids) + self.position_embedding
        for layer in self.layers:
            x = layer(x, self.causal_mask)
        x = self.final_layer_norm(x)
        # Pooled at the first end-of-text token (the pad token is the same token).
        eot = (input_ids == self.eot_id).int().argmax(dim=-1)
        pooled = x[torch.arange(x.shape[0]), eot]
        return self.text_projection(pooled)


def initialise(module, width, seed):
    """Random weights from a fixed seed, scaled so that the output depends on the input as a
    trained CLIP's does (Hugging Face's own init scales leave a random ViT's class token almost
    constant: every image's embedding at cosine 0.9997 to every other's, which would make an
    agreement check meaningless). Sharper attention (q, k at 2/sqrt(width)), residual branches
    at 1/sqrt(width), small class and position embeddings and a final layer norm of random
    gains give pairwise cosines of about 0.3 to 0.6 between different images and between
    different captions, as a trained CLIP shows."""
    generator = torch.Generator().manual_seed(seed)

    def normal(tensor, std, mean=0.0):
        with torch.no_grad():
            tensor.copy_(mean + torch.randn(tensor.shape, generator=generator) * std)

    for name, parameter in module.named_parameters():
        if name.endswith("bias"):
            normal(parameter, 0.02)
        elif name in ("post_layernorm.weight", "final_layer_norm.weight"):
            normal(parameter, 1.0)
        elif "layer_norm" in name or "layrnorm" in name:
            normal(parameter, 0.1, mean=1.0)
        elif "q_proj" in name or "k_proj" in name:
            normal(parameter, QK_SCALE * width**-0.5)
        elif any(part in name for part in ("v_proj", "out_proj", "fc2", "projection")):
            normal(parameter, width**-0.5)
        elif "fc1" in name:
            normal(parameter, (2 * width) ** -0.5)
        elif "patch_embedding" in name:
            normal(parameter, (3 * PATCH_SIZE * PATCH_SIZE) ** -0.5)
        elif "token_embedding" in name:
            normal(parameter, 0.02)
        else:  # class and position embeddings
            normal(parameter, 0.1 * width**-0.5)


def build(vocab_size, eot_id, seed):
    vision = VisionTower()
    initialise(vision, VISION_WIDTH, seed)
    text = TextTower(vocab_size, eot_id)
    initialise(text, TEXT_WIDTH, seed + 1)
    return vision.eval(), text.eval()


def export(args):
    started = time.perf_counter()
    vision, text = build(args.vocab_size, args.eot_id, args.seed)
    onnx_dir = f"{args.out_dir}/onnx"
    with torch.no_grad():
        torch.onnx.export(
            vision,
            (torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE),),
            f"{onnx_dir}/vision_model.onnx",
            input_names=["pixel_values"],
            output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch_size"}, "image_embeds": {0: "batch_size"}},
            opset_version=14,
            do_constant_folding=True,
        )
        ids = torch.full((2, CONTEXT_LENGTH), args.eot_id, dtype=torch.int64)
        torch.onnx.export(
            text,
            (ids,),
            f"{onnx_dir}/text_model.onnx",
            input_names=["input_ids"],
            output_names=["text_embeds"],
            dynamic_axes={"input_ids": {0: "batch_size"}, "text_embeds": {0: "batch_size"}},
            opset_version=14,
            do_constant_folding=True,
        )
    print(json.dumps({"seconds": time.perf_counter() - started}))


def loaded_blas():
    with open("/proc/self/maps") as maps:
        names = {line.split()[-1] for line in maps if "blas" in line.lower()}
    return sorted(name for name in names if name.startswith("/"))


def pil_preprocess(path, config):
    """CLIPImageProcessor on PIL + numpy: shortest-edge bicubic resize (long side truncated),
    centre crop, rescale, normalise."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    edge = config["size"]["shortest_edge"]
    width, height = image.size
    if width <= height:
        size = (edge, int(edge * height / width))
    else:
        size = (int(edge * width / height), edge)
    image = image.resize(size, resample=config.get("resample", 3))
    crop_height, crop_width = config["crop_size"]["height"], config["crop_size"]["width"]
    top = (image.height - crop_height) // 2
    left = (image.width - crop_width) // 2
    array = np.asarray(image)[top : top + crop_height, left : left + crop_width]
    array = (array.astype(np.float64) * config.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(config["image_mean"], dtype=np.float32)
    std = np.array(config["image_std"], dtype=np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)


def run_batches(model, inputs, batch, device):
    """Each batch goes to the device and its output comes back, as onnxruntime's session.run
    does with host tensors; the copy back waits for the device."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], batch):
            outputs.append(model(inputs[start : start + batch].to(device)).cpu())
    return torch.cat(outputs)


def serve(args):
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    vision, text = build(args.vocab_size, args.eot_id, args.seed)
    vision.to(device)
    text.to(device)
    with open(args.preprocessor_config) as handle:
        config = json.load(handle)
    ready = {"ready": True, "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "blas":
            reply = {"libraries": loaded_blas(), "config": torch.__config__.show()}
        elif op == "vision":
            count = command["count"]
            shape = (count, 3, IMAGE_SIZE, IMAGE_SIZE)
            pixels = np.fromfile(command["pixels"], dtype="<f4", count=math.prod(shape))
            pixels = pixels.reshape(shape)
            inputs = torch.from_numpy(pixels)
            started, cpu_started = time.perf_counter(), time.process_time()
            embeds = run_batches(vision, inputs, command["batch"], device)
            reply = {
                "items": count,
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu_started,
            }
            embeds.numpy().astype("<f4").tofile(command["out"])
        elif op == "vision_pil":
            paths = command["images"]
            batch = command["batch"]
            started = time.perf_counter()
            outputs = []
            with torch.inference_mode():
                for start in range(0, len(paths), batch):
                    tensors = [pil_preprocess(path, config) for path in paths[start : start + batch]]
                    outputs.append(vision(torch.from_numpy(np.stack(tensors)).to(device)).cpu())
            reply = {"items": len(paths), "seconds": time.perf_counter() - started}
            torch.cat(outputs).numpy().astype("<f4").tofile(command["out"])
        elif op == "text":
            count = command["count"]
            ids = np.fromfile(command["ids"], dtype="<i8", count=count * CONTEXT_LENGTH)
            ids = ids.reshape(count, CONTEXT_LENGTH)
            started = time.perf_counter()
            embeds = run_batches(text, torch.from_numpy(ids), command["batch"], device)
            reply = {"items": count, "seconds": time.perf_counter() - started}
            embeds.numpy().astype("<f4").tofile(command["out"])
        elif op == "gemm":
            linear = nn.Linear(command["k"], command["n"]).to(device)
            inputs = torch.randn(command["m"], command["k"]).to(device)
            round_seconds = []
            with torch.inference_mode():
                linear(inputs)
                for _ in range(command["rounds"]):
                    started = time.perf_counter()
                    linear(inputs).cpu()
                    round_seconds.append(time.perf_counter() - started)
            reply = {"items": command["rounds"], "round_seconds": round_seconds}
        else:
            reply = {"error": f"unknown op {op}"}
        print(json.dumps(reply), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["export", "serve"])
    parser.add_argument("out_dir", nargs="?")
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--eot-id", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preprocessor-config")
    parser.add_argument("--device", default="cpu", help="torch device for serve: cpu, cuda, cuda:N")
    args = parser.parse_args()
    if args.command == "export":
        export(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
