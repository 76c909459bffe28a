import subprocess,json,os,time,sys,collections
# smol or async-std at 4 KiB x 64 connections, round after round: the requests a second beside each thread's CPU and context switches (from /proc/PID/task), to see which thread a slow round spends on.
impl=sys.argv[1]; N=int(sys.argv[2])
p=subprocess.Popen([f'/work/main/target/release/ferry-{impl}','serve','/tmp/abroot','--listen','127.0.0.1:0','-q'],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True)
addr=p.stdout.readline().split()[-1]
def threads():
    out={}
    for t in os.listdir(f'/proc/{p.pid}/task'):
        try:
            comm=open(f'/proc/{p.pid}/task/{t}/comm').read().strip()
            f=open(f'/proc/{p.pid}/task/{t}/stat').read().rsplit(')',1)[1].split()
            st=open(f'/proc/{p.pid}/task/{t}/status').read()
            vol=int(st.split('voluntary_ctxt_switches:')[1].split()[0]); nonvol=int(st.split('nonvoluntary_ctxt_switches:')[1].split()[0])
            out[(t,comm)]=(int(f[11])+int(f[12]),vol,nonvol)
        except OSError: pass
    return out
try:
  for i in range(N):
    a=threads()
    j=json.loads(subprocess.run(['/work/main/target/release/ferry-load',addr,'four-k.bin','-c','64','-d','3','--json'],capture_output=True,text=True).stdout)
    b=threads(); n=j['requests']
    agg=collections.defaultdict(lambda:[0,0,0])
    for k,v in b.items():
        v0=a.get(k,(0,0,0))
        name=k[1].rstrip('0123456789-')
        for x in range(3): agg[name][x]+=v[x]-v0[x]
    print(f"{j['requests_per_sec']:8.0f}", ' '.join(f"{k}:cpu{v[0]/100:.2f}s/vol{v[1]/n:.2f}/inv{v[2]/n:.3f}" for k,v in sorted(agg.items()) if v[0] or v[1]))
finally: p.terminate()
