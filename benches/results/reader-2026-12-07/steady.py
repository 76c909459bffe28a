#!/usr/bin/env python3
# 64 MiB through ferry-load: one download vs N in a row, nginx vs ferry; spread of each
import os, subprocess, json, random, statistics, sys, time, socket
IMPLS=sys.argv[1].split(','); ROUNDS=int(sys.argv[2]); NS=[int(x) for x in sys.argv[3].split(',')]
FILE=sys.argv[4] if len(sys.argv)>4 else 'sixty-four-m.bin'
load='/work/main/target/release/ferry-load'
def port():
    s=socket.socket(); s.bind(('127.0.0.1',0)); p=s.getsockname()[1]; s.close(); return p
np=port()
open('/tmp/ngx/nginx.conf','w').write(f"""worker_processes auto; daemon off; error_log /tmp/ngx/error.log; pid /tmp/ngx/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 60s;
client_body_temp_path /tmp/ngx/tmp; proxy_temp_path /tmp/ngx/tmp; fastcgi_temp_path /tmp/ngx/tmp; uwsgi_temp_path /tmp/ngx/tmp; scgi_temp_path /tmp/ngx/tmp;
server {{ listen 127.0.0.1:{np}; root /tmp/abroot; }} }}""")
ng=subprocess.Popen(['/usr/sbin/nginx','-c','/tmp/ngx/nginx.conf','-p','/tmp/ngx'])
time.sleep(0.5)
servers={'nginx':(ng,f'127.0.0.1:{np}')}
for i in IMPLS:
    p=subprocess.Popen([f'/work/main/target/release/ferry-{i}','serve','/tmp/abroot','--listen','127.0.0.1:0','-q'],stdout=subprocess.PIPE,stderr=subprocess.DEVNULL,text=True)
    servers[i]=(p,p.stdout.readline().split()[-1])
res={}
try:
  for r in range(ROUNDS):
    for n in NS:
      order=list(servers); random.shuffle(order)
      for s in order:
        p,addr=servers[s]
        j=json.loads(subprocess.run([load,addr,FILE,'-c','1','-n',str(n),'--json']+(['--http'] if s=='nginx' else []),capture_output=True,text=True,check=True).stdout)
        res.setdefault((s,n),[]).append(j['bytes_per_sec']/1e9)
finally:
    for p,_ in servers.values(): p.terminate()
for n in NS:
  base=statistics.median(res[('nginx',n)])
  for s in servers:
    v=res[(s,n)]; m=statistics.median(v)
    print(f"n={n:3} {s:10} median {m:5.2f} GB/s x{m/base:.2f}  spread {min(v):.2f}-{max(v):.2f}  cv {statistics.pstdev(v)/statistics.mean(v):.2f}")
