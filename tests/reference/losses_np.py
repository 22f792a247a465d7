"""Slow, obvious NumPy references for the losses in ``ald_jax.losses`` (float64, explicit loops).

Written from the papers' equations, independently of the JAX code: no vectorised tricks, no shared
helpers. Gradients are derived by hand (formulas in the docstrings) and checked against finite
differences of the reference values in the tests.
"""

from __future__ import annotations

import math

import numpy as np


def np_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax of one logit vector ``[A]``."""
    z = np.asarray(logits, np.float64)
    e = np.array([math.exp(v - max(z)) for v in z])
    return e / e.sum()


def np_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """KL(p || q) for one pair of logit vectors, by the definition sum_a p_a log(p_a / q_a)."""
    p, q = np_softmax(p_logits), np_softmax(q_logits)
    return float(sum(p[a] * math.log(p[a] / q[a]) for a in range(len(p)) if p[a] > 0))


def np_kl_batch(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL per step for ``[T, B, A]`` logits -> ``[T, B]``."""
    t_len, b_len, _ = p_logits.shape
    out = np.zeros((t_len, b_len))
    for t in range(t_len):
        for b in range(b_len):
            out[t, b] = np_kl(p_logits[t, b], q_logits[t, b])
    return out


def np_masked_mean(x: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``x`` over the entries where ``mask`` is non-zero; 0 if there are none."""
    total, count = 0.0, 0
    for idx in np.ndindex(*mask.shape):
        if mask[idx]:
            total += float(x[idx])
            count += 1
    return total / max(count, 1)


def np_softplus(x: float) -> float:
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def np_sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---------------------------------------------------------------------------------------------
# V-trace and n-step returns.


def np_vtrace(v_tm1, v_t, r_t, discount_t, log_rhos, clip_rho=1.0, clip_c=1.0, clip_pg_rho=1.0):
    """V-trace by the explicit sum of Espeholt et al. (2018), Eq. 1, for each step separately:

    ``v_s = V(x_s) + sum_{t>=s} (prod_{i<t} gamma_i) (prod_{i<t} c_i) delta_t`` (products from
    ``s``), and ``pg_adv_s = min(clip_pg, rho_s) (r_s + gamma_s v_{s+1} - V(x_s))``.
    """
    t_len, b_len = r_t.shape
    vs = np.zeros((t_len, b_len))
    adv = np.zeros((t_len, b_len))
    for b in range(b_len):
        rho = [math.exp(float(x)) for x in log_rhos[:, b]]
        for s in range(t_len):
            total = float(v_tm1[s, b])
            coef = 1.0
            for t in range(s, t_len):
                rho_bar = min(clip_rho, rho[t])
                delta = rho_bar * (r_t[t, b] + discount_t[t, b] * v_t[t, b] - v_tm1[t, b])
                total += coef * delta
                coef *= discount_t[t, b] * min(clip_c, rho[t])
            vs[s, b] = total
        for s in range(t_len):
            next_vs = vs[s + 1, b] if s + 1 < t_len else v_t[t_len - 1, b]
            adv[s, b] = min(clip_pg_rho, rho[s]) * (
                r_t[s, b] + discount_t[s, b] * next_vs - v_tm1[s, b]
            )
    return vs, adv


def np_nstep_returns(v_t, r_t, discount_t):
    """Bootstrapped returns by the explicit sum

    ``G_s = sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i) r_t + (prod_{i=s}^{T-1} gamma_i) V(x_T)``.
    """
    t_len, b_len = r_t.shape
    out = np.zeros((t_len, b_len))
    for b in range(b_len):
        for s in range(t_len):
            total, coef = 0.0, 1.0
            for t in range(s, t_len):
                total += coef * r_t[t, b]
                coef *= discount_t[t, b]
            out[s, b] = total + coef * v_t[t_len - 1, b]
    return out


# ---------------------------------------------------------------------------------------------
# V-MPO.


def np_vmpo(
    online_logits,
    target_logits,
    actions,
    advantages,
    mask,
    eta_raw,
    alpha_raw,
    epsilon_eta=0.1,
    epsilon_alpha=0.004,
    top_k_fraction=0.5,
):
    """V-MPO loss (Song et al. 2020, Sec. 4.2) and its gradients, by hand.

    Selection: valid steps sorted by advantage, ``k = max(floor(frac * n_valid), 1)``, every valid
    step with ``A >= (k-th largest)`` is selected. With ``psi`` the softmax of ``A / eta`` over the
    selected set, ``pi`` the online and ``p`` the target policy, ``n`` the number of valid steps:

    - loss = ``-sum psi log pi(a)`` + ``eta (eps_eta + log mean_sel exp(A/eta))``
      + ``alpha KL`` + ``alpha (eps_alpha - KL)`` with ``KL = mean_valid KL(p || pi)``;
    - d/d online_logits[t, b] = ``-psi_tb (onehot(a_tb) - pi_tb) + alpha/n (pi_tb - p_tb)``;
    - d/d eta_raw = ``sigmoid(eta_raw) (eps_eta + log mean_sel exp(A/eta) - sum psi A / eta)``;
    - d/d alpha_raw = ``sigmoid(alpha_raw) (eps_alpha - KL)``.

    Returns a dict with the scalar terms, ``selected`` and ``weights`` ([T, B]) and the gradients.
    """
    t_len, b_len, n_act = online_logits.shape
    eta = np_softplus(float(eta_raw)) + 1e-8
    alpha = np_softplus(float(alpha_raw)) + 1e-8

    valid = [(t, b) for t in range(t_len) for b in range(b_len) if mask[t, b]]
    n = len(valid)
    result = {
        "eta": eta,
        "alpha": alpha,
        "selected": np.zeros((t_len, b_len), bool),
        "weights": np.zeros((t_len, b_len)),
        "grad_logits": np.zeros((t_len, b_len, n_act)),
    }
    if n == 0:
        result.update(
            loss=0.0, policy_loss=0.0, temperature_loss=0.0, kl_loss=0.0, alpha_loss=0.0,
            kl=0.0, grad_eta_raw=0.0, grad_alpha_raw=0.0,
        )  # fmt: skip
        return result

    k = max(int(math.floor(top_k_fraction * n + 1e-9)), 1)
    ordered = sorted((float(advantages[t, b]) for t, b in valid), reverse=True)
    threshold = ordered[k - 1]
    selected = [(t, b) for t, b in valid if advantages[t, b] >= threshold]

    scaled = {tb: float(advantages[tb]) / eta for tb in selected}
    top = max(scaled.values())
    denom = sum(math.exp(v - top) for v in scaled.values())
    log_mean_exp = math.log(denom) + top - math.log(len(selected))
    weights = {tb: math.exp(scaled[tb] - top) / denom for tb in selected}

    policy_loss = 0.0
    for (t, b), w in weights.items():
        pi = np_softmax(online_logits[t, b])
        policy_loss -= w * math.log(pi[int(actions[t, b])])
        result["selected"][t, b] = True
        result["weights"][t, b] = w
        onehot = np.zeros(n_act)
        onehot[int(actions[t, b])] = 1.0
        result["grad_logits"][t, b] -= w * (onehot - pi)

    kl = sum(np_kl(target_logits[t, b], online_logits[t, b]) for t, b in valid) / n
    for t, b in valid:
        pi = np_softmax(online_logits[t, b])
        p = np_softmax(target_logits[t, b])
        result["grad_logits"][t, b] += alpha / n * (pi - p)

    temperature_loss = eta * (epsilon_eta + log_mean_exp)
    kl_loss = alpha * kl
    alpha_loss = alpha * (epsilon_alpha - kl)
    weighted_scaled = sum(weights[tb] * scaled[tb] for tb in selected)
    result.update(
        policy_loss=policy_loss,
        temperature_loss=temperature_loss,
        kl_loss=kl_loss,
        alpha_loss=alpha_loss,
        kl=kl,
        loss=policy_loss + temperature_loss + kl_loss + alpha_loss,
        grad_eta_raw=np_sigmoid(float(eta_raw)) * (epsilon_eta + log_mean_exp - weighted_scaled),
        grad_alpha_raw=np_sigmoid(float(alpha_raw)) * (epsilon_alpha - kl),
    )
    return result


# ---------------------------------------------------------------------------------------------
# PopArt.


def np_popart_stats(batches, masks, decay, mu=0.0, nu=1.0):
    """Runs ``mu <- (1-beta) mu + beta mean(G)``, ``nu <- (1-beta) nu + beta mean(G^2)`` over the
    batches (means over valid entries; a batch without valid entries is skipped).

    Returns ``(mu, nu, sigma)`` with ``sigma = clip(sqrt(max(nu - mu^2, 1e-8)), 1e-4, 1e6)``.
    """
    for targets, mask in zip(batches, masks, strict=True):
        values = [float(targets[idx]) for idx in np.ndindex(*targets.shape) if mask[idx]]
        if not values:
            continue
        mean = sum(values) / len(values)
        mean_sq = sum(v * v for v in values) / len(values)
        mu = (1.0 - decay) * mu + decay * mean
        nu = (1.0 - decay) * nu + decay * mean_sq
    sig = min(max(math.sqrt(max(nu - mu * mu, 1e-8)), 1e-4), 1e6)
    return mu, nu, sig


# ---------------------------------------------------------------------------------------------
# Distillation.


def np_distill(actor_logits, actor_value, learner_logits, learner_value, mask, alpha_pi, alpha_v):
    """ALD losses and the gradients that reach the actor (student).

    ``L_pi = mean_valid KL(pi_A || pi_L)``; with ``p = pi_A``:
    ``d KL(p||q) / d p_logits = p (log p - log q - KL(p||q))``.
    ``L_V = mean_valid 1/2 (V_L - V_A)^2``; ``d L_V / d V_A = (V_A - V_L) / n``.
    ``L_reg`` (learner regulariser, gradient to the learner) = the same value as ``L_pi``, with
    ``d KL(p||q) / d q_logits = q - p``.
    """
    t_len, b_len, n_act = actor_logits.shape
    valid = [(t, b) for t in range(t_len) for b in range(b_len) if mask[t, b]]
    n = max(len(valid), 1)
    l_pi, l_v = 0.0, 0.0
    g_actor_logits = np.zeros((t_len, b_len, n_act))
    g_learner_logits = np.zeros((t_len, b_len, n_act))
    g_actor_value = np.zeros((t_len, b_len))
    for t, b in valid:
        p = np_softmax(actor_logits[t, b])
        q = np_softmax(learner_logits[t, b])
        kl = np_kl(actor_logits[t, b], learner_logits[t, b])
        l_pi += kl / n
        g_actor_logits[t, b] = p * (np.log(p) - np.log(q) - kl) / n
        g_learner_logits[t, b] = (q - p) / n
        diff = float(learner_value[t, b] - actor_value[t, b])
        l_v += 0.5 * diff * diff / n
        g_actor_value[t, b] = -diff / n
    return {
        "policy_distill_loss": l_pi,
        "value_distill_loss": l_v,
        "loss": alpha_pi * l_pi + alpha_v * l_v,
        "grad_actor_logits": g_actor_logits,
        "grad_learner_logits_reg": g_learner_logits,
        "grad_actor_value": g_actor_value,
    }
