# PyTorch micro-benchmark on the wheel scripts/setup.sh installs; run from the repository root as
#   PYTHONPATH=.libtorch/site python3 scripts/pytorch-bench/onednn_off.py [threads]
# Bundle convolutions with oneDNN on and off (torch.backends.mkldnn), weights frozen, 1 thread
# (docs/performance.md, 'Where the time goes').
import torch, time, sys
import torch.nn.functional as F
from timing import bench
torch.set_num_threads(1)
for (N,C,E,H) in [(6,8,5,16),(6,16,5,8),(6,32,5,4),(6,64,5,2)]:
    x=torch.randn(N,C,H,H,requires_grad=True)
    out=[]
    for k,d in [(3,1),(5,1),(5,2)]:
        w=torch.randn(C*E,1,k,k)
        f=lambda: F.conv2d(x,w,padding=d*(k-1)//2,dilation=d,groups=C).sum().backward()
        a=bench(f, reps=30)
        with torch.backends.mkldnn.flags(enabled=False): b=bench(f, reps=30)
        out.append('dw%d/%d %.3f/%.3f'%(k,d,a,b))
    y=torch.randn(N,E*C,H,H,requires_grad=True); wp=torch.randn(E*C,C,1,1)
    f=lambda: F.conv2d(y,wp,groups=E).sum().backward()
    a=bench(f, reps=30)
    with torch.backends.mkldnn.flags(enabled=False): b=bench(f, reps=30)
    out.append('pw %.3f/%.3f'%(a,b))
    print(N,C,E,H,'mkldnn/off (frozen w)',' | '.join(out),flush=True)
