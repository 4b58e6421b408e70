# PyTorch micro-benchmark on the wheel scripts/setup.sh installs; run from the repository root as
#   PYTHONPATH=.libtorch/site python3 scripts/pytorch-bench/unfold_matmul.py [threads]
# Depthwise and grouped pointwise convolutions against unfold + matmul formulations
# (docs/performance.md, 'Where the time goes'). Argument: threads.
import torch, time, sys
import torch.nn.functional as F
import functools
import timing
bench = functools.partial(timing.bench, reps=30)
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
def dw_mm(x, w, k, d, C, E):
    # x [N,C,H,W]; w [C*E,1,k,k] channel-major (c*E+e) -> y [N, C*E, H, W]
    N,_,H,Wd=x.shape
    cols=F.unfold(x,k,dilation=d,padding=d*(k-1)//2).view(N,C,k*k,H*Wd)
    y=torch.matmul(w.view(C,E,k*k),cols)   # [N,C,E,HW]
    return y.view(N,C*E,H,Wd)
def pw_mm(y, w, E, C):
    N,_,H,Wd=y.shape
    return torch.matmul(w.view(E,C,C), y.view(N,E,C,H*Wd)).view(N,E*C,H,Wd)
for (N,C,E,H) in [(6,8,5,16),(6,16,5,8),(6,32,5,4),(6,64,5,2),(6,32,5,21),(6,64,5,11)]:
    x=torch.randn(N,C,H,H,requires_grad=True)
    out=[]
    for k,d in [(3,1),(5,1),(5,2)]:
        w=torch.randn(C*E,1,k,k,requires_grad=True)
        a=F.conv2d(x,w,padding=d*(k-1)//2,dilation=d,groups=C); b=dw_mm(x,w,k,d,C,E)
        assert (a-b).abs().max()<1e-3
        t1=bench(lambda: F.conv2d(x,w,padding=d*(k-1)//2,dilation=d,groups=C).sum().backward())
        t2=bench(lambda: dw_mm(x,w,k,d,C,E).sum().backward())
        out.append('dw%d/%d conv %.3f mm %.3f'%(k,d,t1,t2))
    y=torch.randn(N,E*C,H,H,requires_grad=True); wp=torch.randn(E*C,C,1,1,requires_grad=True)
    assert (F.conv2d(y,wp,groups=E)-pw_mm(y,wp,E,C)).abs().max()<1e-3
    t1=bench(lambda: F.conv2d(y,wp,groups=E).sum().backward()); t2=bench(lambda: pw_mm(y,wp,E,C).sum().backward())
    out.append('pw conv %.3f mm %.3f'%(t1,t2))
    print(N,C,E,H,' | '.join(out),flush=True)
