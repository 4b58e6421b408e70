#!/usr/bin/env python3
# Groups a flat perf profile by op kind, as docs/performance.md ("Where the time goes") shows it:
#   perf record -D 5000 -F 999 -o perf.data target/release/search --threads 1 bench --crop 64 --steps 4 --warmup 1 --device cpu
#   perf report -i perf.data --no-children --sort dso,symbol | python3 scripts/profile-buckets.py
# Each symbol goes to the first group whose pattern matches it.
import re,sys,collections
rows=[]
for line in sys.stdin:
    m=re.match(r'\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)',line)
    if m: rows.append((float(m.group(1)),m.group(2),m.group(4)))
b=collections.OrderedDict([
 ('convolutions (oneDNN im2col/col2im, GEMM, JIT kernels, primitive lookup)', r'dnnl|mkl_|im2col|col2im|gemm|\[JIT\]|jit_|conv|unfolded2d'),
 ('batch norm', r'batch_norm'),
 ('pooling', r'pool'),
 ('element-wise and copies (ReLU, add, multiply, addcmul, copy, cat, fill)', r'copy|add|mul|threshold|relu|clamp|cat_|memset|memmove|memcpy|fill|VectorizedLoop|cpu_kernel|reduce|sum|upsample|where'),
 ('allocator (mimalloc) and page faults', r'^_?mi_|mi_|malloc|free|operator delete|operator new|clear_page|page_fault|folio'),
 ('autograd engine', r'torch::autograd'),
 ('dispatcher, tensor bookkeeping, other libtorch', r'c10::|at::|torch::|std::'),
])
tot=collections.Counter()
for pct,dso,sym in rows:
    key='other (kernel, libc, Rust)'
    s=dso+' '+sym if dso.startswith('[JIT') else sym
    for k,rx in b.items():
        if re.search(rx,s): key=k; break
    tot[key]+=pct
print('| where | share of samples |\n|---|---:|')
for k in list(b.keys())+['other (kernel, libc, Rust)']:
    print('| %s | %.0f %% |'%(k,tot[k]))
