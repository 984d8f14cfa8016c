"""Wrong answers a student might write, per chapter and exercise, for tests/test_grading_chapters.py.

``WRONG_ANSWERS[chapter][exercise]`` is a list of (function source, words the hint must contain).
"""

L1_BACKWARD = """def l1_sae_backward(x, params, l1_coeff):
    W_enc, b_enc, W_dec, b_dec = (params[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec"))
    batch = {batch}
    x_c = x - b_dec
    z = x_c @ W_enc + b_enc
    f = np.maximum(z, 0.0)
    x_hat = f @ W_dec + b_dec
    norms = np.linalg.norm(W_dec, axis=1)
    g_xhat = 2.0 / batch * (x_hat - x)
    g_W_dec = f.T @ g_xhat + l1_coeff / batch * f.sum(axis=0)[:, None] * W_dec / norms[:, None]
    g_f = g_xhat @ W_dec.T + l1_coeff / batch * norms
    g_z = {g_z}
    return {{"W_enc": x_c.T @ g_z, "b_enc": g_z.sum(axis=0), "W_dec": g_W_dec,
            "b_dec": g_xhat.sum(axis=0) - W_enc @ g_z.sum(axis=0)}}
"""

TOPK = """def topk_relu(pre_acts, k):
    idx = np.argpartition(pre_acts, {kth}, axis=-1)[:, {keep}]
    f = np.zeros_like(pre_acts)
    np.put_along_axis(f, idx, {values}, axis=-1)
    return f
"""

# chapter -> exercise name -> [(function source a student might write, words the hint must contain)]
WRONG_ANSWERS = {
    "01_superposition": {
        "toy_forward": [
            ("def toy_forward(W, b, x):\n    return x @ W.T @ W + b\n", "you forgot the ReLU"),
            ("def toy_forward(W, b, x):\n    return np.maximum(x @ W.T, 0)\n",
             "that is the hidden layer h = W x"),
        ],
        "toy_loss": [
            ("def toy_loss(x, x_hat, importance):\n    return np.mean(np.sum((x - x_hat) ** 2, axis=1))\n",
             "you forgot the importance weights"),
            ("def toy_loss(x, x_hat, importance):\n    return np.mean(importance * (x - x_hat) ** 2)\n",
             "you averaged over features"),
        ],
        "feature_dimensionality": [
            ("def feature_dimensionality(W):\n"
             "    overlap = ((W.T @ W) ** 2).sum(axis=1)\n"
             "    safe = np.where(overlap > 0, overlap, 1.0)\n"
             "    return np.where(overlap > 0, (W ** 2).sum(axis=0) / safe, 0.0)\n",
             "you did not normalise W_i"),
            ("def feature_dimensionality(W):\n"
             "    norm2 = (W ** 2).sum(axis=0)\n"
             "    G = W.T @ W\n"
             "    overlap = ((G - np.diag(np.diag(G))) ** 2).sum(axis=1)\n"
             "    safe = np.where(overlap > 0, overlap, 1.0)\n"
             "    return np.where(overlap > 0, norm2 ** 2 / safe, 0.0)\n",
             "you left out the j = i term"),
        ],
        "interference_estimate": [
            ("def interference_estimate(F, p):\n    return p * ((F.T @ F) ** 2).sum(axis=1)\n",
             "you included j = i"),
            ("def interference_estimate(F, p):\n"
             "    G = F.T @ F - np.eye(F.shape[1])\n"
             "    return (G ** 2).sum(axis=1)\n",
             "you forgot the factor p"),
        ],
    },
    "02_sae_from_scratch": {
        "l1_sae_backward": [
            (L1_BACKWARD.format(batch="1", g_z="g_f * (z > 0)"), "the gradients are B times too large"),
            (L1_BACKWARD.format(batch="x.shape[0]", g_z="g_f"), "the encoder gradients ignore the ReLU"),
        ],
        "project_decoder_grad": [
            ("def project_decoder_grad(W_dec, grad_W_dec):\n"
             "    coef = (grad_W_dec * W_dec).sum(axis=0, keepdims=True) / (W_dec**2).sum(axis=0, keepdims=True)\n"
             "    return grad_W_dec - coef * W_dec\n",
             "you projected along the columns of W_dec"),
            ("def project_decoder_grad(W_dec, grad_W_dec):\n"
             "    coef = (grad_W_dec * W_dec).sum(axis=1, keepdims=True) / (W_dec**2).sum(axis=1, keepdims=True)\n"
             "    return coef * W_dec\n",
             "you returned the parallel component"),
        ],
        "topk_relu": [
            (TOPK.format(kth="k", keep=":k", values="np.maximum(np.take_along_axis(pre_acts, idx, axis=-1), 0)"),
             "you kept the k SMALLEST pre-activations"),
            (TOPK.format(kth="-k", keep="-k:", values="np.take_along_axis(pre_acts, idx, axis=-1)"),
             "the ReLU is missing"),
        ],
    },
    "03_lasso": {
        "nonneg_soft_threshold": [
            ("def nonneg_soft_threshold(v, t):\n    return np.sign(v) * np.maximum(np.abs(v) - t, 0)\n",
             "you wrote the signed soft threshold"),
            ("def nonneg_soft_threshold(v, t):\n    return np.maximum(v, 0) - t\n",
             "you subtracted t after the ReLU"),
        ],
        "ista_step": [
            ("def ista_step(x, D, z, lam, eta):\n"
             "    return np.maximum(z - eta * (z @ D - x) @ D.T - eta * lam, 0)\n",
             "you forgot the factor 2"),
            ("def ista_step(x, D, z, lam, eta):\n"
             "    return np.maximum(z - eta * 2 * (z @ D - x) @ D.T - lam, 0)\n",
             "the threshold is missing the step size"),
        ],
        "ista_encoder": [
            ("def ista_encoder(D, lam, eta):\n    return 2 * eta * D.T, np.full(D.shape[0], -lam)\n",
             "b_enc is missing the step size"),
            ("def ista_encoder(D, lam, eta):\n    return eta * D.T, np.full(D.shape[0], -eta * lam)\n",
             "W_enc is missing the factor 2"),
        ],
    },
    "04_shrinkage": {
        "topk_backward": [
            ("def topk_backward(pre_acts, k, grad_f):\n    return grad_f * (pre_acts > 0)\n",
             "ignores the TopK selection"),
            ("def topk_backward(pre_acts, k, grad_f):\n"
             "    idx = np.argpartition(pre_acts, -k, axis=-1)[:, -k:]\n"
             "    mask = np.zeros_like(grad_f)\n"
             "    np.put_along_axis(mask, idx, 1.0, axis=-1)\n"
             "    return grad_f * mask\n",
             "the ReLU is missing"),
        ],
        "batch_topk_relu": [
            ("def batch_topk_relu(pre_acts, k):\n"
             "    idx = np.argpartition(pre_acts, -k, axis=-1)[:, -k:]\n"
             "    f = np.zeros_like(pre_acts)\n"
             "    np.put_along_axis(f, idx, np.maximum(np.take_along_axis(pre_acts, idx, axis=-1), 0), axis=-1)\n"
             "    return f\n",
             "that is TopK"),
            ("def batch_topk_relu(pre_acts, k):\n"
             "    flat = pre_acts.ravel()\n"
             "    idx = np.argsort(flat)[-k * pre_acts.shape[0]:]\n"
             "    f = np.zeros_like(flat)\n"
             "    f[idx] = flat[idx]\n"
             "    return f.reshape(pre_acts.shape)\n",
             "the ReLU is missing"),
        ],
        "jumprelu_threshold_grad": [
            ("def jumprelu_threshold_grad(z, theta, bandwidth, grad_f, l0_coeff):\n"
             "    kernel = np.abs((z - theta) / bandwidth) < 0.5\n"
             "    return ((-(theta / bandwidth) * grad_f) * kernel).sum(axis=0)\n",
             "L0 penalty's gradient is missing"),
            ("def jumprelu_threshold_grad(z, theta, bandwidth, grad_f, l0_coeff):\n"
             "    kernel = np.abs((z - theta) / bandwidth) < 0.5\n"
             "    per = -(1 / bandwidth) * grad_f - l0_coeff / (z.shape[0] * bandwidth)\n"
             "    return (per * kernel).sum(axis=0)\n",
             "jump height 1"),
        ],
    },
    "05_evaluation": {
        "fvu_streaming": [
            ("def fvu_streaming(batches):\n"
             "    residual, total = 0.0, 0.0\n"
             "    for x, x_hat in batches:\n"
             "        x, x_hat = x.astype(np.float64), x_hat.astype(np.float64)\n"
             "        residual += ((x - x_hat) ** 2).sum()\n"
             "        total += (x ** 2).sum()\n"
             "    return residual / total\n",
             "variance about zero"),
            ("def fvu_streaming(batches):\n"
             "    residual, total = 0.0, 0.0\n"
             "    for x, x_hat in batches:\n"
             "        x, x_hat = x.astype(np.float64), x_hat.astype(np.float64)\n"
             "        residual += ((x - x_hat) ** 2).sum()\n"
             "        total += ((x - x.mean(axis=0)) ** 2).sum()\n"
             "    return residual / total\n",
             "each batch was centred on its own mean"),
        ],
        "dead_fraction_in_window": [
            ("def dead_fraction_in_window(code_batches, window):\n"
             "    fired, seen = np.zeros(code_batches[0].shape[1], dtype=bool), 0\n"
             "    for f in code_batches:\n"
             "        if seen >= window:\n"
             "            break\n"
             "        fired |= (f != 0).any(axis=0)\n"
             "        seen += f.shape[0]\n"
             "    return float(np.mean(~fired))\n",
             "you used that whole batch"),
            ("def dead_fraction_in_window(code_batches, window):\n"
             "    f = np.concatenate(code_batches)[:window]\n"
             "    return float(np.mean(~(f != 0).any(axis=1)))\n",
             "wrong axis"),
        ],
        "mmcs": [
            ("def mmcs(learned, true):\n"
             "    sim = learned @ true.T\n"
             "    return sim.max(axis=1).mean(), sim.max(axis=0).mean()\n",
             "dot products, not cosines"),
            ("def mmcs(learned, true):\n"
             "    a = learned / np.linalg.norm(learned, axis=1, keepdims=True)\n"
             "    b = true / np.linalg.norm(true, axis=1, keepdims=True)\n"
             "    sim = np.abs(a @ b.T)\n"
             "    return sim.max(axis=1).mean(), sim.max(axis=0).mean()\n",
             "absolute cosine"),
        ],
    },
    "06_gpt2_sae": {
        "fvu_on_batch": [
            ("def fvu_on_batch(x, x_hat):\n"
             "    x, x_hat = x.double(), x_hat.double()\n"
             "    return ((x - x_hat) ** 2).sum().item() / (x ** 2).sum().item()\n",
             "variance about zero"),
            ("def fvu_on_batch(x, x_hat):\n"
             "    x, x_hat = x.double(), x_hat.double()\n"
             "    err = ((x - x_hat) ** 2).sum(dim=1)\n"
             "    var = ((x - x.mean(dim=0)) ** 2).sum(dim=1)\n"
             "    return (err / var).mean().item()\n",
             "one ratio per token"),
        ],
        "make_splice_hook": [
            ("def make_splice_hook(sae):\n"
             "    def hook(act, hook):\n"
             "        return act\n"
             "    return hook\n",
             "leaves the activation unchanged"),
            ("def make_splice_hook(sae):\n"
             "    def hook(act, hook):\n"
             "        flat = act.reshape(-1, act.shape[-1])\n"
             "        return (sae.encode(flat) @ sae.W_dec).reshape(act.shape)\n"
             "    return hook\n",
             "misses b_dec"),
        ],
        "make_steering_hook": [
            ("def make_steering_hook(direction, alpha):\n"
             "    def hook(act, hook):\n"
             "        return act + direction\n"
             "    return hook\n",
             "without multiplying by alpha"),
            ("def make_steering_hook(direction, alpha):\n"
             "    def hook(act, hook):\n"
             "        act[:, -1] += alpha * direction\n"
             "        return act\n"
             "    return hook\n",
             "only at the last position"),
        ],
    },
    "07_matryoshka": {
        "nested_recon_loss": [
            ("def nested_recon_loss(x, f, W_dec, b_dec, prefix_sizes):\n"
             "    return sum(((x - f[:, :m] @ W_dec[:m] - b_dec) ** 2).sum(axis=1).mean()\n"
             "               for m in prefix_sizes)\n",
             "summed over the prefixes"),
            ("def nested_recon_loss(x, f, W_dec, b_dec, prefix_sizes):\n"
             "    return ((x - f @ W_dec - b_dec) ** 2).sum(axis=1).mean()\n",
             "full dictionary only"),
        ],
        "nested_loss_grad_W_dec": [
            ("def nested_loss_grad_W_dec(x, f, W_dec, b_dec, prefix_sizes):\n"
             "    g = 2.0 / x.shape[0] * (f @ W_dec + b_dec - x)\n"
             "    return f.T @ g\n",
             "only from the full reconstruction"),
            ("def nested_loss_grad_W_dec(x, f, W_dec, b_dec, prefix_sizes):\n"
             "    grad = np.zeros_like(W_dec)\n"
             "    for m in prefix_sizes:\n"
             "        g = 2.0 / x.shape[0] * (f[:, :m] @ W_dec[:m] + b_dec - x)\n"
             "        grad[:m] += f[:, :m].T @ g\n"
             "    return grad\n",
             "1/n"),
        ],
        "full_absorption_rate": [
            ("def full_absorption_rate(f, W_dec, x, present, P, parent_latent, min_share=0.4,\n"
             "                         min_absorber_cos=0.025):\n"
             "    silent = present & (f[:, parent_latent] == 0) & (x @ P > 0)\n"
             "    return silent.sum() / present.sum()\n",
             "every input where the parent latent is silent"),
            ("def full_absorption_rate(f, W_dec, x, present, P, parent_latent, min_share=0.4,\n"
             "                         min_absorber_cos=0.025):\n"
             "    dots = W_dec @ P\n"
             "    proj = f * dots\n"
             "    top = proj.argmax(axis=1)\n"
             "    probe = x @ P\n"
             "    ok = (dots[top] / np.linalg.norm(W_dec[top], axis=1) >= min_absorber_cos)\n"
             "    absorbed = (present & (f[:, parent_latent] == 0) & (probe > 0) & ok\n"
             "                & (proj[np.arange(len(top)), top] >= min_share * probe))\n"
             "    return absorbed.sum() / len(x)\n",
             "divided by all inputs"),
        ],
    },
    "08_circuits": {
        "transcoder_loss": [
            ("def transcoder_loss(x, y, W_enc, b_enc, W_dec, b_dec, k):\n"
             "    f = np.maximum(x @ W_enc + b_enc, 0)\n"
             "    return float(((y - f @ W_dec - b_dec) ** 2).sum(axis=1).mean())\n",
             "kept every latent"),
            ("def transcoder_loss(x, y, W_enc, b_enc, W_dec, b_dec, k):\n"
             "    pre = x @ W_enc + b_enc\n"
             "    f = np.zeros_like(pre)\n"
             "    for b in range(len(pre)):\n"
             "        top = np.argsort(pre[b])[-k:]\n"
             "        f[b, top] = np.maximum(pre[b, top], 0)\n"
             "    return float(((y - f @ W_dec) ** 2).sum(axis=1).mean())\n",
             "left out b_dec"),
        ],
        "edge_weight": [
            ("def edge_weight(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position):\n"
             "    v = alpha * (d_s / sigma1_p) @ W_OV + (d_s if same_position else 0)\n"
             "    return float(a_s * (v / sigma_q) @ w_enc_t)\n",
             "centring"),
            ("def edge_weight(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position):\n"
             "    v = d_s if same_position else np.zeros_like(d_s)\n"
             "    return float(a_s * ((v - v.mean()) / sigma_q) @ w_enc_t)\n",
             "attention path"),
        ],
        "ablation_summary": [
            ("def ablation_summary(predicted, measured, top_change, random_changes):\n"
             "    corr = np.corrcoef(predicted, measured)[0, 1]\n"
             "    return corr, abs(top_change) / abs(np.mean(random_changes))\n",
             "with their signs"),
            ("def ablation_summary(predicted, measured, top_change, random_changes):\n"
             "    corr = np.corrcoef(predicted, measured)[0, 0]\n"
             "    return corr, abs(top_change) / np.mean(np.abs(random_changes))\n",
             "off-diagonal"),
        ],
    },
    "09_limits": {
        "fit_power_law": [
            ("def fit_power_law(n, loss):\n"
             "    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)\n"
             "    return np.exp(intercept), slope\n",
             "wrong sign"),
            ("def fit_power_law(n, loss):\n"
             "    slope, intercept = np.polyfit(n, loss, 1)\n"
             "    return intercept, -slope\n",
             "straight line to loss"),
        ],
        "diff_in_means_probe": [
            ("def diff_in_means_probe(x, y):\n    return x[y].mean(axis=0)\n",
             "mean(x[y]) only"),
            ("def diff_in_means_probe(x, y):\n    return x[~y].mean(axis=0) - x[y].mean(axis=0)\n",
             "sign is reversed"),
        ],
        "sparse_probe": [
            ("def sparse_probe(codes_train, y_train, codes_test, y_test, k):\n"
             "    gap = codes_train[y_train].mean(0) - codes_train[~y_train].mean(0)\n"
             "    idx = np.argsort(-gap)[:k]\n"
             "    return idx, 0.9\n",
             "largest signed"),
            ("def sparse_probe(codes_train, y_train, codes_test, y_test, k):\n"
             "    gap = codes_test[y_test].mean(0) - codes_test[~y_test].mean(0)\n"
             "    idx = np.argsort(-np.abs(gap))[:k]\n"
             "    return idx, 0.9\n",
             "on the test rows"),
        ],
    },
}
