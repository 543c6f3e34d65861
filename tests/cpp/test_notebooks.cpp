// The notebooks' numbers from the C++ core alone (no Python, no BLAS): notebook 7.1's chain and
// notebook 7.2's network (K = 5, width 6), each checked against the values the notebooks print
// (3 decimals) and against central finite differences of the core's own loss.
#include <cmath>
#include <cstdio>
#include <vector>

#include "backprop_core/model.hpp"
#include "backprop_core/toy.hpp"

namespace bc = backprop_core;

static int failures = 0;

static void near(const char* what, double got, double want, double tol) {
    if (!(std::fabs(got - want) <= tol)) {
        std::printf("FAIL %s: got %.17g, want %.17g (tolerance %g)\n", what, got, want, tol);
        ++failures;
    }
}

// Notebook 7.2's parameters as numpy draws them (np.random.seed(44), the notebook's order; see
// backprop_core.examples.mlp_example), written exactly as hexadecimal doubles.
const double W0[] = {
    -0x1.8050927d0540ep-1, 0x1.50fccb2b7cc0dp+0, 0x1.3f03086d4291cp+0,
    -0x1.9adbc20d8a901p+0, -0x1.77d8439f0c3d9p+0, -0x1.b70edb8754d40p+0,
};
const double b0[] = {
    -0x1.2ef3e70747072p+0, 0x1.35fd01f9c0e70p-1, -0x1.e73ebdc855e02p-1,
    0x1.7184403d40afbp-2, 0x1.0f84275bc1656p+0, -0x1.dfdaf66effe48p-4,
};
const double W1[] = {
    -0x1.35b657474cb91p+0, -0x1.30c4d851ca3b2p+0, 0x1.c24c28452247dp-3,
    -0x1.b40ef1e49cbc5p-3, -0x1.6958020341de9p+0, -0x1.ee9293495f301p-2,
    0x1.33a6ae0967887p+0, -0x1.695f03dc06b22p-1, 0x1.9c9241bf0cf52p-6,
    -0x1.9083e625b515bp-2, 0x1.8b8c8658bd2dap-3, 0x1.65ac85a5f85c3p-2,
    0x1.2eb03e5e02270p-1, 0x1.0a732995abe36p-1, 0x1.a6838c8a62b52p-1,
    0x1.b46eb13361c86p-2, 0x1.90abb7c57a841p-3, -0x1.0739b61fd88fap-1,
    -0x1.896ea295cf932p+1, -0x1.94a4944f5b2bep-2, -0x1.973e8fd4c3b17p-1,
    -0x1.680a074e2e5d1p-1, -0x1.bcc5c43830828p+0, 0x1.8069f0a33e2b2p-1,
    -0x1.dd2c0884b46dep+0, 0x1.ac8e24bbd7a58p-2, -0x1.e1f6b4f1f811ap-3,
    0x1.ba7a4d9605325p-2, 0x1.bd96e7660155ap-1, 0x1.011a88256629ep+1,
    0x1.5f2c60d262fc6p+0, 0x1.0f004566b6ac6p+0, 0x1.7201a481bf21bp+0,
    0x1.8ff5dc772b602p-5, 0x1.71fd5df82de8dp-4, -0x1.ebc87121f4fdbp-2,
};
const double b1[] = {
    0x1.33e0eea207417p-2, 0x1.1cec3efb5287cp+0, -0x1.3c752cf23ddc5p-6,
    -0x1.a76a05b62fdd5p-11, -0x1.46ed6f4d6b457p-1, 0x1.983d2b46becb3p+0,
};
const double W2[] = {
    0x1.30f48672e0d94p-6, 0x1.1f70f50ad55b8p-1, -0x1.967b041129dd6p-3,
    0x1.da53149d3efb1p-2, -0x1.d1b024a574306p+0, 0x1.103ae33ab1c53p-3,
    -0x1.3bf1dcc0e1144p-1, 0x1.4ee4da1b778abp+0, 0x1.8d3a99c4e5a2cp-1,
    -0x1.1ee4fd14d4502p-2, -0x1.72a7f6c284479p-1, -0x1.e2f9888b990adp-1,
    0x1.1f9556d9073aap-1, -0x1.62b5b793142a7p-1, 0x1.b3a684065a49ap+0,
    -0x1.0d3db1513c3f6p+0, -0x1.528274f448056p-1, -0x1.02ca52cafdd46p+0,
    -0x1.757934d61d9eep+0, 0x1.8fed368822099p-2, -0x1.9ef28ad4cb254p-1,
    0x1.285d3013fca20p+0, 0x1.0434156cbcdf1p-5, -0x1.e59d17fea8938p+0,
    -0x1.badad9f4c8d9bp-1, -0x1.d48fd8022cea1p-5, 0x1.3b23fc6f9fb85p+0,
    -0x1.112da9764d6a5p-1, -0x1.5809a8742f853p-2, -0x1.8e43ea5b1fd86p+0,
    0x1.37f8b5929e2ddp+0, -0x1.20fa70010217fp+1, 0x1.c4a4ffbe0851ap-3,
    -0x1.c3f7559c7e775p-5, 0x1.1feed43862372p-2, 0x1.3281afcb7f1edp-1,
};
const double b2[] = {
    0x1.06f4e6234e184p+0, 0x1.c6f2f3f34527ap-8, -0x1.c0d8e80cb54f2p+0,
    0x1.8c9a5ca902c27p+0, -0x1.4a6ed495b03edp-1, 0x1.c2389c8b93f98p-1,
};
const double W3[] = {
    -0x1.4605e598ae95ap-2, 0x1.7468416b9b43fp-1, -0x1.0c9f5f4fba971p-4,
    -0x1.cde0a7151be4dp-2, 0x1.b501ecb08debdp-1, -0x1.44913c7cb9c49p+1,
    -0x1.8cc879e6761c7p-2, -0x1.594ae3a7ef5fep-6, 0x1.43cfbb8f80e15p-2,
    -0x1.42772f2dafb01p-1, -0x1.facc682e5ad7ep+0, 0x1.1b533d34b30c1p-2,
    -0x1.3c87932351609p+0, 0x1.258c1e1f5fa40p-1, 0x1.46211ec8edb2dp-2,
    -0x1.426f935632f44p-4, 0x1.7a2954dca7843p+0, 0x1.20cd10842b337p+0,
    -0x1.15af828c4433ap+0, -0x1.d9e3738dc0782p+0, 0x1.55488d6ae5d0ap+0,
    0x1.1ed642d900f1cp+1, -0x1.90ee590355a17p-1, 0x1.f2c7162122bafp-3,
    -0x1.0292d2b3aab9fp+0, -0x1.6f70deb827813p-1, 0x1.734efe453d89fp+1,
    0x1.8b32d425a444fp-2, 0x1.4634f4a2558eap-5, 0x1.b85d2899d7e81p-4,
    -0x1.48d75567e5b24p+0, 0x1.5e300bc7f7bedp-2, 0x1.d4f1ac1b9da49p+0,
    0x1.7308267c20fcbp+0, -0x1.0e65fc42b3d80p-1, -0x1.d23fc4d4713b6p-1,
};
const double b3[] = {
    0x1.4d6a5b482fba5p-1, 0x1.0bd908cf16494p-6, -0x1.1823dac98508dp-3,
    -0x1.8e28bd218b149p-1, 0x1.97fa10b3d9befp-1, 0x1.39d950c0ac94cp-5,
};
const double W4[] = {
    -0x1.ec1618b4bdeabp-5, 0x1.eabbbfae96a68p-8, 0x1.8a0534048e15ap-2,
    -0x1.06d713b504894p+0, -0x1.1474785acfcfep+0, -0x1.49864ea3a70bbp+1,
    0x1.37e89cf2e67bfp-2, 0x1.e4796834e8a95p+0, 0x1.0428e64782e12p+0,
    -0x1.66516c867319cp-5, -0x1.2856e82d71b8fp+0, -0x1.952469ac99a16p-2,
    -0x1.571a33d732208p-1, 0x1.4775dd9d67819p-2, -0x1.2eaca8eef7c34p-2,
    0x1.a125a0a189baep-2, -0x1.c776b9f7180acp-2, -0x1.641083e91ad42p+0,
    0x1.acf4dcc11e804p+0, -0x1.6170c0afab146p+0, -0x1.46d99624b3d22p+0,
    -0x1.8d57cbfce76b6p-1, -0x1.2fc0468b0afe3p-1, 0x1.82ca1460bfe96p-1,
    0x1.71802c974199bp-2, -0x1.f9007d5a31befp-2, 0x1.e76c7e08c9450p-2,
    0x1.1a21d9deb9058p+1, 0x1.777771ca74d1ap-2, 0x1.b7baf6c3b8902p-3,
    0x1.69a547823d56ap-1, -0x1.cecc025ba29b2p-1, 0x1.65d1e3856ada7p+1,
    0x1.844d86101285bp+0, -0x1.248c0f56ee20bp-1, 0x1.1e52be385b012p-1,
};
const double b4[] = {
    -0x1.0ca48aae461bbp+1, 0x1.4e2284e47b577p-2, 0x1.12c3915dd0f84p-9,
    0x1.87f3a583e7270p-2, -0x1.4dc7aa66aa22ap-1, 0x1.16120eab27628p+0,
};
const double W5[] = {
    0x1.dbd93f7d62737p+0, 0x1.66c2a65959e87p-4, -0x1.ac9f994ff8cd1p-5,
    0x1.1c66c742931afp-1, -0x1.ed433fbe6f986p-1, -0x1.714c616808e54p-3,
};
const double b5[] = {
    0x1.a6bd8b1510368p-1,
};

static void toy_chain() {
    const bc::Activation acts[] = {bc::Activation::sin, bc::Activation::exp, bc::Activation::cos};
    double beta[] = {1.0, 2.0, -3.0, 0.4}, omega[] = {0.1, -0.4, 2.0, 3.0};
    const double x = 2.3, y = 2.0;
    double f[4], h[3], df[4], dh[3], dbeta[4], domega[4];
    const auto loss_of = [&] {
        const bc::ToyChain<double> c{acts, 3, beta, omega, 1.0};
        double ff[4], hh[3];
        bc::toy_forward(c, &x, 1, ff, hh);
        return (ff[3] - y) * (ff[3] - y);
    };
    const bc::ToyChain<double> c{acts, 3, beta, omega, 1.0};
    const double loss = bc::toy_forward_backward(c, &x, &y, 0, 1, f, h, df, dh, dbeta, domega);
    const double printed_f[] = {1.230, 1.623, 7.137, 2.372};
    for (int k = 0; k < 4; ++k) near("toy f_k (notebook 7.1)", f[k], printed_f[k], 5e-4);
    near("toy loss (notebook 7.1)", loss, 0.139, 5e-4);
    near("toy dl/df3 (notebook 7.1)", df[3], 0.745, 5e-4);
    near("toy dl/domega0 (notebook 7.1)", domega[0], 5.246, 5e-4);
    double grads[8], gb[4], gw[4];
    const double fused = bc::toy_gradients(c, &x, &y, 0, 1, gb, gw);
    near("toy_gradients loss", fused, loss, 1e-15);
    for (int k = 0; k < 4; ++k) grads[k] = dbeta[k], grads[4 + k] = domega[k];
    for (int k = 0; k < 4; ++k) near("toy_gradients dl/dbeta", gb[k], dbeta[k], 1e-13);
    for (int i = 0; i < 8; ++i) {  // central differences
        double& p = i < 4 ? beta[i] : omega[i - 4];
        const double keep = p, step = 1e-6 * std::max(1.0, std::fabs(p));
        p = keep + step;
        const double up = loss_of();
        p = keep - step;
        const double down = loss_of();
        p = keep;
        near("toy finite difference", grads[i], (up - down) / (2 * step), 1e-6 * std::max(1.0, std::fabs(grads[i])));
    }
}

static void relu_mlp() {
    std::vector<const double*> W = {W0, W1, W2, W3, W4, W5}, b = {b0, b1, b2, b3, b4, b5};
    bc::Model<double> m({1, 6, 6, 6, 6, 6, 1}, W.data(), b.data());
    const double x = 1.2, y = 30.0;
    const std::size_t ys[2] = {0, 0};
    std::vector<std::vector<double>> dW(6), db(6);
    std::vector<double*> pw, pb;
    for (std::size_t k = 0; k < 6; ++k) {
        dW[k].resize(m.dims()[k + 1] * m.dims()[k]);
        db[k].resize(m.dims()[k + 1]);
        pw.push_back(dW[k].data());
        pb.push_back(db[k].data());
    }
    const double loss = m.gradients(&x, 1, &y, ys, pw.data(), pb.data());
    std::vector<std::vector<double>> f(6, std::vector<double>(6)), h(6, std::vector<double>(6));
    std::vector<double*> pf, ph(1, nullptr);
    for (std::size_t k = 0; k < 6; ++k) pf.push_back(f[k].data()), ph.push_back(h[k].data());
    m.forward(&x, 1, pf.data(), ph.data());
    near("mlp output (notebook 7.2)", f[5][0], -0.923, 5e-4);
    near("mlp loss (notebook 7.2)", loss, 478.118, 5e-4);
    near("mlp dl/db0[1] (notebook 7.2)", db[0][1], 46.618, 5e-4);
    near("mlp dl/db0[2] (notebook 7.2)", db[0][2], 8.447, 5e-4);
    // every bias and weight against central differences (the notebook's own check)
    const auto loss_of = [&] {
        std::vector<double> gw(m.size());  // gradients not looked at: only the loss
        std::vector<double*> qw, qb;
        std::size_t at = 0;
        for (std::size_t k = 0; k < 6; ++k) {
            qw.push_back(gw.data() + at), at += m.dims()[k + 1] * m.dims()[k];
            qb.push_back(gw.data() + at), at += m.dims()[k + 1];
        }
        return m.gradients(&x, 1, &y, ys, qw.data(), qb.data());
    };
    for (std::size_t k = 0; k < 6; ++k)
        for (int which = 0; which < 2; ++which) {
            double* p = which ? m.biases(k) : m.weights(k);
            const std::vector<double>& g = which ? db[k] : dW[k];
            for (std::size_t i = 0; i < g.size(); ++i) {
                const double keep = p[i], step = 1e-6 * std::max(1.0, std::fabs(keep));
                p[i] = keep + step;
                const double up = loss_of();
                p[i] = keep - step;
                const double down = loss_of();
                p[i] = keep;
                const double fd = (up - down) / (2 * step);
                near(which ? "mlp dl/db finite difference" : "mlp dl/dW finite difference", g[i], fd,
                     1e-5 * std::max(1.0, std::fabs(fd)));
            }
        }
}

int main() {
    toy_chain();
    relu_mlp();
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("test_notebooks: all passed\n");
    return 0;
}
