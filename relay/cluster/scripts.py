"""The Lua scripts that change names in Redis: each runs atomically, so two nodes never both win.

Key layout: relay/cluster/records.py. The scripts read node keys they are not given in KEYS
(the holders of a name are only known inside the script): fine on one Redis server (with
replicas or Sentinel), not on Redis Cluster, which the docs say.

A name is held by one agent (its token's ``label`` and the digest of the resume token a relay
minted for it), through one node or several at once (``nodes``, space-separated; ``node`` is
the first of them, kept for readers that know one holder). Only that agent may add a node:
a claim with ``join`` whose label and resume digest match the record's.
"""

# Every change is published on CHANNEL (the name's key), so the nodes' directories
# (relay/cluster/directory.py) read it again.
CHANNEL = "molehill:changed"

# Shared by the scripts: the record's holders as a list, and written back.
_MEMBERS = """
-- ``nodes`` counts only if it lists ``node``: a record written by an older node, or by hand,
-- with ``node`` alone, names its one holder
local function members(rec)
  local list = {}
  local listed = false
  for id in string.gmatch(rec['nodes'] or '', '%S+') do
    table.insert(list, id)
    if id == rec['node'] then listed = true end
  end
  if not listed then return rec['node'] and {rec['node']} or {} end
  return list
end
local function holds(list, id)
  for _, other in ipairs(list) do if other == id then return true end end
  return false
end
local function without(list, id)
  local kept = {}
  for _, other in ipairs(list) do if other ~= id then table.insert(kept, other) end end
  return kept
end
local function alive_only(list, prefix)
  local kept = {}
  for _, id in ipairs(list) do
    if redis.call('EXISTS', prefix .. id) == 1 then table.insert(kept, id) end
  end
  return kept
end
local function read(key)
  local flat = redis.call('HGETALL', key)
  local rec = {}
  for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
  return rec, #flat > 0
end
"""

# The live names of a token (its set, cleaned of names expired or taken by another token).
_COUNT = """
local function live_names(set, label, except)
  local count = 0
  for _, key in ipairs(redis.call('SMEMBERS', set)) do
    local owner = redis.call('HMGET', key, 'label', 'state')
    if owner[1] ~= label then
      redis.call('SREM', set, key)
    elseif owner[2] == 'live' and key ~= except then
      count = count + 1
    end
  end
  return count
end
"""

# KEYS[1] the name; ARGV: node, label, presented digest, fresh digest, takeover "1"/"0",
# TTL in ms, node key prefix, the tunnel's policy (JSON: basic_auth, allow, deny, protocol),
# join "1"/"0" (the agent holds the name through another node too and adds this one), the
# token's max_tunnels (0: no limit). KEYS[2]: the token's set of names (``molehill:label:L``;
# absent for "" (no token), so an open relay counts nothing).
# Returns {how, detail}: fresh|resumed|takeover|joined (granted, detail: the digest now kept),
# taken (detail: a node holding it), held (detail: ms left), too_many (detail: the count).
CLAIM = (
    _MEMBERS
    + _COUNT
    + """
local function take(digest, how)
  if KEYS[2] then redis.call('SADD', KEYS[2], KEYS[1]) end
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'nodes', ARGV[1], 'state', 'live',
             'label', ARGV[2], 'resume', digest, 'policy', ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PUBLISH', 'molehill:changed', KEYS[1])
  return {how, digest}
end
local rec, found = read(KEYS[1])
local label = rec['label'] or ''
local same = found and label == ARGV[2]
if KEYS[2] and not same and tonumber(ARGV[10]) > 0 then
  -- a new name for this token: its live names across the cluster count (one script, no
  -- command per request); the name asked for, its own already, does not
  local count = live_names(KEYS[2], ARGV[2], KEYS[1])
  if count >= tonumber(ARGV[10]) then return {'too_many', tostring(count)} end
end
if not found then return take(ARGV[4], 'fresh') end
if ARGV[3] ~= '' and rec['resume'] == ARGV[3] and label == ARGV[2] then
  if ARGV[9] ~= '1' then return take(ARGV[3], 'resumed') end
  local list = without(members(rec), ARGV[1])
  local alive = {}
  for _, id in ipairs(list) do
    if rec['state'] == 'live' and redis.call('EXISTS', ARGV[7] .. id) == 1 then
      table.insert(alive, id)
    end
  end
  table.insert(alive, ARGV[1])
  redis.call('HSET', KEYS[1], 'node', alive[1], 'nodes', table.concat(alive, ' '),
             'state', 'live', 'policy', ARGV[8])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('PUBLISH', 'molehill:changed', KEYS[1])
  return {'joined', ARGV[3]}
end
if ARGV[5] == '1' and ARGV[2] ~= '' and label == ARGV[2] then
  return take(ARGV[4], 'takeover')
end
if rec['state'] == 'live' then
  for _, id in ipairs(members(rec)) do
    if redis.call('EXISTS', ARGV[7] .. id) == 1 then return {'taken', id} end
  end
end
return {'held', tostring(redis.call('PTTL', KEYS[1]))}
"""
)

# KEYS: this node's live names; ARGV: node, TTL ms, node key, node URL, node key TTL ms, node
# key prefix, then label, digest, policy and join ("1": the agent holds it through several
# nodes) of each name in KEYS order. Renews what is still this node's (dropping holders whose
# node key expired: dead nodes), registers again what is gone (expired in an outage, or a
# Redis restarted empty), joins a record the same agent wrote through another node meanwhile,
# and returns the keys another agent holds now: this node must stop serving those. It also
# stamps the node's heartbeat (``molehill:seen:ID``: url, seen = Redis's clock in ms,
# tunnels), kept a day for `molehill relay cluster status`.
RENEW = (
    _MEMBERS
    + """
redis.call('SET', ARGV[3], ARGV[4], 'PX', ARGV[5])
local now = redis.call('TIME')
local seen = 'molehill:seen:' .. ARGV[1]
redis.call('HSET', seen, 'url', ARGV[4], 'seen', now[1] * 1000 + math.floor(now[2] / 1000),
           'tunnels', #KEYS)
redis.call('HDEL', seen, 'stopped')
redis.call('PEXPIRE', seen, 86400000)
local lost = {}
for i, key in ipairs(KEYS) do
  local label, digest, policy = ARGV[3 + 4 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i]
  local join = ARGV[6 + 4 * i] == '1'
  local rec, found = read(key)
  if not found then
    redis.call('HSET', key, 'node', ARGV[1], 'nodes', ARGV[1], 'state', 'live',
               'label', label, 'resume', digest, 'policy', policy)
    if label ~= '' then redis.call('SADD', 'molehill:label:' .. label, key) end
    redis.call('PEXPIRE', key, ARGV[2])
    redis.call('PUBLISH', 'molehill:changed', key)
  else
    local list = members(rec)
    local mine = holds(list, ARGV[1])
    -- the same agent, holding the name through several nodes (say, both re-registered
    -- after Redis restarted empty): this node joins the record the other one wrote
    local same_agent = join and digest ~= '' and rec['resume'] == digest
                       and (rec['label'] or '') == label
    if mine or same_agent then
      -- the holders in their order (visitors elsewhere go to the first), dead ones dropped
      local alive = {}
      for _, id in ipairs(list) do
        local live = rec['state'] == 'live' and redis.call('EXISTS', ARGV[6] .. id) == 1
        if id == ARGV[1] or live then table.insert(alive, id) end
      end
      if not mine then table.insert(alive, ARGV[1]) end
      local nodes = table.concat(alive, ' ')
      if nodes ~= (rec['nodes'] or '') or rec['state'] ~= 'live' then
        redis.call('HSET', key, 'node', alive[1], 'nodes', nodes, 'state', 'live')
        redis.call('PUBLISH', 'molehill:changed', key)
      end
      redis.call('PEXPIRE', key, ARGV[2])
    else
      table.insert(lost, key)
    end
  end
end
return lost
"""
)

# KEYS[1] the name; ARGV: node, digest, lease ms, node key prefix. This node lost its link to
# the agent: if the agent holds the name through other live nodes, they go on serving it; if
# this was its last link, hold the name for the lease (for its resume token).
HOLD = (
    _MEMBERS
    + """
local rec, found = read(KEYS[1])
local list = members(rec)
if not holds(list, ARGV[1]) then return 0 end
local rest = alive_only(without(list, ARGV[1]), ARGV[4])
if #rest > 0 and rec['state'] == 'live' then
  redis.call('HSET', KEYS[1], 'node', rest[1], 'nodes', table.concat(rest, ' '))
else
  redis.call('HSET', KEYS[1], 'state', 'held', 'resume', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
redis.call('PUBLISH', 'molehill:changed', KEYS[1])
return 1
"""
)

# KEYS[1] the name; ARGV: node, node key prefix. The agent left this node on purpose: free the
# name, if this was its last live node (an agent leaving says so on each of its links).
RELEASE = (
    _MEMBERS
    + """
local rec, found = read(KEYS[1])
local list = members(rec)
if not holds(list, ARGV[1]) then return 0 end
local rest = alive_only(without(list, ARGV[1]), ARGV[2])
redis.call('PUBLISH', 'molehill:changed', KEYS[1])
if #rest > 0 and rec['state'] == 'live' then
  redis.call('HSET', KEYS[1], 'node', rest[1], 'nodes', table.concat(rest, ' '))
  return 1
end
if rec['label'] and rec['label'] ~= '' then
  redis.call('SREM', 'molehill:label:' .. rec['label'], KEYS[1])
end
return redis.call('DEL', KEYS[1])
"""
)
