# PyTorch micro-benchmark on the wheel scripts/setup.sh installs; run from the repository root as
#   PYTHONPATH=.libtorch/site python3 scripts/pytorch-bench/merged_pointwise.py [threads]
# One edge bundle as computed now against one with its pointwise convolutions and batch norms
# merged (docs/performance.md, 'Where the time goes'). Argument: threads.
import torch, time, sys
import torch.nn.functional as F
import functools
import timing
bench = functools.partial(timing.bench, reps=15)
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
def bn(x): return F.batch_norm(x,None,None,training=True)
def cur(x, C, E, W):
    N,_,H,Wd=x.shape; r=x.relu()
    def dwpw(inp, wdw, k, d, shared, wpw):
        y=F.conv2d(inp,wdw,padding=d*(k-1)//2,dilation=d,groups=inp.shape[1])
        if shared: y=y.view(N,C,E,H,Wd).transpose(1,2).reshape(N,E*C,H,Wd)
        return bn(F.conv2d(y,wpw,groups=E))
    out=0
    for (k,d,two) in [(3,1,True),(5,1,True),(3,2,False),(5,2,False)]:
        y=dwpw(r,W['dw%d%d'%(k,d)],k,d,True,W['pw%d%d'%(k,d)])
        if two:
            y=y.relu_(); y=dwpw(y,W['dwb%d'%k],k,1,False,W['pwb%d'%k])
        out=out+y
    return out
def merged(x,C,E,W,merge_dw):
    N,_,H,Wd=x.shape; r=x.relu()
    def reorder(y,ops): return y.view(N,C,ops,E,H,Wd).permute(0,2,3,1,4,5)
    if merge_dw:
        a=F.conv2d(r,W['dwA'],padding=2,groups=C)   # C*3E kernels
        parts=[reorder(a,3)]
    else:
        parts=[reorder(F.conv2d(r,W['dw%d%d'%(k,d)],padding=d*(k-1)//2,dilation=d,groups=C),1) for (k,d) in [(3,1),(5,1),(3,2)]]
    parts.append(reorder(F.conv2d(r,W['dw52'],padding=4,dilation=2,groups=C),1))
    A=torch.cat(parts,1).reshape(N,4*E*C,H,Wd)
    A=bn(F.conv2d(A,W['pwA'],groups=4*E))
    s=A.narrow(1,0,2*E*C).relu()
    if merge_dw:
        b=F.conv2d(s,W['dwB'],padding=2,groups=2*E*C)
    else:
        b=torch.cat([F.conv2d(s.narrow(1,0,E*C),W['dwb3'],padding=1,groups=E*C),F.conv2d(s.narrow(1,E*C,E*C),W['dwb5'],padding=2,groups=E*C)],1)
    B=bn(F.conv2d(b,W['pwB'],groups=2*E))
    return B.narrow(1,0,E*C)+B.narrow(1,E*C,E*C)+A.narrow(1,2*E*C,E*C)+A.narrow(1,3*E*C,E*C)
for (N,C,E,H) in [(6,8,5,16),(6,16,5,8),(6,32,5,4),(6,8,5,81),(6,16,5,41),(6,32,5,21),(6,64,5,11)]:
    x=torch.randn(N,C,H,H,requires_grad=True)
    W={}
    for k,d in [(3,1),(5,1),(3,2),(5,2)]:
        W['dw%d%d'%(k,d)]=torch.randn(C*E,1,k,k,requires_grad=True); W['pw%d%d'%(k,d)]=torch.randn(E*C,C,1,1,requires_grad=True)
    for k in [3,5]:
        W['dwb%d'%k]=torch.randn(E*C,1,k,k,requires_grad=True); W['pwb%d'%k]=torch.randn(E*C,C,1,1,requires_grad=True)
    W['dwA']=torch.randn(C*3*E,1,5,5,requires_grad=True); W['pwA']=torch.randn(4*E*C,C,1,1,requires_grad=True)
    W['dwB']=torch.randn(2*E*C,1,5,5,requires_grad=True); W['pwB']=torch.randn(2*E*C,C,1,1,requires_grad=True)
    t0=bench(lambda: cur(x,C,E,W).sum().backward())
    t1=bench(lambda: merged(x,C,E,W,False).sum().backward())
    t2=bench(lambda: merged(x,C,E,W,True).sum().backward())
    print(N,C,E,H,'current %.2f  merged-pw %.2f  merged-dw %.2f'%(t0,t1,t2), flush=True)
