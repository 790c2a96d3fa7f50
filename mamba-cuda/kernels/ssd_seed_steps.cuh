// ssd_seed_steps.cuh: the step loop shared by ssd_seed.cu (`ssdr_h`) and ssd_seed2.cu
// (`ssdq`); the including file defines SQT (steps per tile).
#pragma once

// The 32 steps of a tile for one thread (ssdr_h, `p.mode & 8`): operands of steps
// t .. t+7 are loaded before the partials of steps t-8 .. t-1 are stored, so the loads'
// latency overlaps the FMAs (in program order a load cannot pass a store that may alias).
// SLOW: the plain step R = a R + u B (a per step), else the rescaled R += u B.
template <bool SLOW>
__device__ __forceinline__ void ssdr_steps8(float (&R)[4], const float* bB, const float* bC, const float* xw,
                                            const float* av, float* part, const int NP, const int RB,
                                            const int PS) {
    float4 bq[8], cq[8];
    float uq[8], aq[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        bq[e] = *reinterpret_cast<const float4*>(bB + e * NP);
        cq[e] = *reinterpret_cast<const float4*>(bC + e * NP);
        uq[e] = xw[e * RB];
        aq[e] = SLOW ? av[e] : 1.f;
    }
#pragma unroll
    for (int t8 = 0; t8 < SQT; t8 += 8) {
        float4 bn[8], cn[8];
        float un[8], an[8];
        if (t8 + 8 < SQT) {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                bn[e] = *reinterpret_cast<const float4*>(bB + (t8 + 8 + e) * NP);
                cn[e] = *reinterpret_cast<const float4*>(bC + (t8 + 8 + e) * NP);
                un[e] = xw[(t8 + 8 + e) * RB];
                an[e] = SLOW ? av[t8 + 8 + e] : 1.f;
            }
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) {
            const float u = uq[e];
            if (SLOW) {
                const float a = aq[e];
                R[0] = fmaf(a, R[0], u * bq[e].x);
                R[1] = fmaf(a, R[1], u * bq[e].y);
                R[2] = fmaf(a, R[2], u * bq[e].z);
                R[3] = fmaf(a, R[3], u * bq[e].w);
            } else {
                R[0] = fmaf(u, bq[e].x, R[0]);
                R[1] = fmaf(u, bq[e].y, R[1]);
                R[2] = fmaf(u, bq[e].z, R[2]);
                R[3] = fmaf(u, bq[e].w, R[3]);
            }
            float y = cq[e].x * R[0];
            y = fmaf(cq[e].y, R[1], y);
            y = fmaf(cq[e].z, R[2], y);
            y = fmaf(cq[e].w, R[3], y);
            part[(t8 + e) * PS] = y;
        }
        if (t8 + 8 < SQT) {
#pragma unroll
            for (int e = 0; e < 8; ++e) {
                bq[e] = bn[e];
                cq[e] = cn[e];
                uq[e] = un[e];
                aq[e] = an[e];
            }
        }
    }
}
