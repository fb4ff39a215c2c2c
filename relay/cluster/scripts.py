"""The Lua scripts that change names in Redis: each runs atomically, so two nodes never both win.

Key layout: relay/cluster/records.py. The scripts read a node key they are not given in KEYS
(the owner of a name is only known inside the script): fine on one Redis server (with replicas
or Sentinel), not on Redis Cluster, which the docs say.
"""

# Every change is published on CHANNEL (the name's key), so the nodes' directories
# (relay/cluster/directory.py) read it again.
CHANNEL = "molehill:changed"

# KEYS[1] the name; ARGV: node, label, presented digest, fresh digest, takeover "1"/"0",
# TTL in ms, node key prefix, the tunnel's policy (JSON: basic_auth, allow, deny, protocol).
# Returns {how, detail}: fresh|resumed|takeover (granted, detail: the digest now kept), taken
# (detail: the owner node), held (detail: ms left).
CLAIM = """
local function take(digest, how)
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'state', 'live', 'label', ARGV[2],
             'resume', digest, 'policy', ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PUBLISH', 'molehill:changed', KEYS[1])
  return {how, digest}
end
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return take(ARGV[4], 'fresh') end
local rec = {}
for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
local label = rec['label'] or ''
if ARGV[3] ~= '' and rec['resume'] == ARGV[3] and label == ARGV[2] then
  return take(ARGV[3], 'resumed')
end
if ARGV[5] == '1' and ARGV[2] ~= '' and label == ARGV[2] then
  return take(ARGV[4], 'takeover')
end
local owner = rec['node'] or ''
if rec['state'] == 'live' and redis.call('EXISTS', ARGV[7] .. owner) == 1 then
  return {'taken', owner}
end
return {'held', tostring(redis.call('PTTL', KEYS[1]))}
"""

# KEYS: this node's live names; ARGV: node, TTL ms, node key, node URL, node key TTL ms, then
# label, digest and policy of each name in KEYS order. Renews what is still this node's, registers
# again what is gone (expired in an outage, or a Redis restarted empty), and returns the keys
# another node holds now: this node must stop serving those. It also stamps the node's heartbeat
# (``molehill:seen:ID``: url, seen = Redis's clock in ms, tunnels), kept a day for
# `molehill relay cluster status` to show a dead node and when it was last seen.
RENEW = """
redis.call('SET', ARGV[3], ARGV[4], 'PX', ARGV[5])
local now = redis.call('TIME')
local seen = 'molehill:seen:' .. ARGV[1]
redis.call('HSET', seen, 'url', ARGV[4], 'seen', now[1] * 1000 + math.floor(now[2] / 1000),
           'tunnels', #KEYS)
redis.call('HDEL', seen, 'stopped')
redis.call('PEXPIRE', seen, 86400000)
local lost = {}
for i, key in ipairs(KEYS) do
  local node = redis.call('HGET', key, 'node')
  if not node then
    redis.call('HSET', key, 'node', ARGV[1], 'state', 'live', 'label', ARGV[3 + 3 * i],
               'resume', ARGV[4 + 3 * i], 'policy', ARGV[5 + 3 * i])
    redis.call('PEXPIRE', key, ARGV[2])
    redis.call('PUBLISH', 'molehill:changed', key)
  elseif node == ARGV[1] then
    redis.call('HSET', key, 'state', 'live')
    redis.call('PEXPIRE', key, ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
"""

# KEYS[1] the name; ARGV: node, digest, lease ms. The agent was lost: hold the name for the
# lease, if this node still holds it.
HOLD = """
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'held', 'resume', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', 'molehill:changed', KEYS[1])
return 1
"""

# KEYS[1] the name; ARGV[1] node. The agent left on purpose: free the name, if still ours.
RELEASE = """
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
redis.call('PUBLISH', 'molehill:changed', KEYS[1])
return redis.call('DEL', KEYS[1])
"""
