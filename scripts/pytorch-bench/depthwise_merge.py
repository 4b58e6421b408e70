# PyTorch micro-benchmark on the wheel scripts/setup.sh installs; run from the repository root as
#   PYTHONPATH=.libtorch/site python3 scripts/pytorch-bench/depthwise_merge.py [threads]
# Depthwise convolutions of an edge bundle separate or merged into one 5x5 (docs/performance.md,
# 'Merged depthwise convolutions'): forward + backward, frozen and with weight gradients.
# Argument: threads (1: the level sizes of crop 64; 2: those of crop 321).
import torch, time, sys
import torch.nn.functional as F
from timing import bench
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
def conv(x,w,k,d,g): return F.conv2d(x,w,padding=d*(k-1)//2,dilation=d,groups=g)
sizes=[(6,8,5,16),(6,16,5,8),(6,32,5,4),(6,64,5,2)] if len(sys.argv) < 2 or sys.argv[1]=='1' else [(6,8,5,81),(6,16,5,41),(6,32,5,21),(6,64,5,11)]
for (N,C,E,H) in sizes:
  for wg in [False, True]:
    x=torch.randn(N,C,H,H,requires_grad=True)
    W={kd:torch.randn(C*E,1,kd[0],kd[0],requires_grad=wg) for kd in [(3,1),(5,1),(3,2),(5,2)]}
    w5=torch.randn(C*3*E,1,5,5,requires_grad=wg); w9=torch.randn(C*4*E,1,9,9,requires_grad=wg)
    sep=lambda: sum(conv(x,W[kd],kd[0],kd[1],C).sum() for kd in W).backward()
    m5=lambda: (conv(x,w5,5,1,C).sum()+conv(x,W[(5,2)],5,2,C).sum()).backward()
    m9=lambda: conv(x,w9,9,1,C).sum().backward()
    y=torch.randn(N,2*E*C,H,H,requires_grad=True); b3=torch.randn(E*C,1,3,3,requires_grad=wg); b5=torch.randn(E*C,1,5,5,requires_grad=wg); bm=torch.randn(2*E*C,1,5,5,requires_grad=wg)
    sepB=lambda: (conv(y[:, :E*C],b3,3,1,E*C).sum()+conv(y[:, E*C:],b5,5,1,E*C).sum()).backward()
    mB=lambda: conv(y,bm,5,1,2*E*C).sum().backward()
    print(N,C,E,H,'weights' if wg else 'frozen','A: sep %.3f m5 %.3f m9 %.3f | B: sep %.3f m %.3f'%(bench(sep, reps=30),bench(m5, reps=30),bench(m9, reps=30),bench(sepB, reps=30),bench(mB, reps=30)),flush=True)
