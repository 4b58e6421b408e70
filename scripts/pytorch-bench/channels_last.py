# PyTorch micro-benchmark on the wheel scripts/setup.sh installs; run from the repository root as
#   PYTHONPATH=.libtorch/site python3 scripts/pytorch-bench/channels_last.py [threads]
# Bundle convolutions and batch norm in NCHW against channels-last (docs/performance.md,
# 'Where the time goes'). Argument: threads.
import torch, time, sys
import torch.nn.functional as F
from timing import bench
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv)>1 else 1)
for (N,C,E,H) in [(6,8,5,16),(6,16,4,8),(6,8,5,81),(6,64,5,11)]:
    x=torch.randn(N,C,H,H,requires_grad=True)
    # depthwise with E kernels per channel
    for k,d in [(3,1),(5,1),(3,2),(5,2)]:
        w=torch.randn(C*E,1,k,k,requires_grad=True)
        pad=d*(k-1)//2
        def f(): F.conv2d(x,w,padding=pad,dilation=d,groups=C).sum().backward()
        xc=x.detach().to(memory_format=torch.channels_last).requires_grad_()
        def g(): F.conv2d(xc,w,padding=pad,dilation=d,groups=C).sum().backward()
        print(N,C,E,H,'dw',k,d,'nchw %.3f cl %.3f'%(bench(f, reps=20),bench(g, reps=20)))
    # pointwise grouped
    y=torch.randn(N,C*E,H,H,requires_grad=True)
    wp=torch.randn(C*E,C,1,1,requires_grad=True)
    def f(): F.conv2d(y,wp,groups=E).sum().backward()
    yc=y.detach().to(memory_format=torch.channels_last).requires_grad_()
    def g(): F.conv2d(yc,wp,groups=E).sum().backward()
    print(N,C,E,H,'pw', 'nchw %.3f cl %.3f'%(bench(f, reps=20),bench(g, reps=20)))
    # bn
    def f(): F.batch_norm(y,None,None,training=True).sum().backward()
    def g(): F.batch_norm(yc,None,None,training=True).sum().backward()
    print(N,C,E,H,'bn', 'nchw %.3f cl %.3f'%(bench(f, reps=20),bench(g, reps=20)))
