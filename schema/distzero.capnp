@0xb0510835e34da1ce;
# DistZero wire format: the node-message envelope and the control plane every
# `dz machine` agent serves. Regenerate the Rust code with `scripts/gen-schema`.

# One node message. The payload is the system's own encoding (its `Message`
# codec); `kind` indexes the system's list of message kinds.
struct Envelope {
  from @0 :UInt32;
  to @1 :UInt32;
  kind @2 :UInt16;
  payload @3 :Data;
}

# Everything on a data connection is a frame. The connecting side sends
# messages; the accepting side answers with acks. Both start with hellos
# that prove knowledge of the cluster secret:
#   client: hello(machine, session, nonce C)
#   server: hello(machine, nonce S, proof HMAC(secret, "server" C))
#   client: hello(proof HMAC(secret, "client" S))
struct Frame {
  union {
    message @0 :Message;
    ack @1 :UInt64;          # every message up to this sequence number arrived
    hello @2 :Hello;
  }
}

# A node message with the sender's per-connection-session sequence number.
struct Message {
  seq @0 :UInt64;
  envelope @1 :Envelope;
}

struct Hello {
  machine @0 :Text;
  session @1 :UInt64;        # the sender's incarnation; a new one resets dedup
  nonce @2 :Data;
  proof @3 :Data;
}

# What a machine should run: the node's identity, its system and role, and
# the system-specific configuration as JSON text.
struct NodeSpec {
  id @0 :UInt32;
  name @1 :Text;
  system @2 :Text;
  role @3 :Text;
  configJson @4 :Text;
}

# Where every node of the cluster lives, so nodes can address each other.
struct Placement {
  node @0 :NodeSpec;
  machine @1 :Text;
  address @2 :Text;   # host:port of the machine's data plane
  machineId @3 :UInt32;
}

# Message faults applied in a machine's transport to what it sends.
struct MessageFaults {
  loss @0 :Float64;
  duplicate @1 :Float64;
  reorder @2 :Float64;
  delayMs @3 :Float64;       # extra delay added to every matching message
  kinds @4 :List(Text);      # empty: every kind
  reorderMs @5 :Float64 = -1.0;  # the reorder window; negative: the default
}

struct KindCount {
  kind @0 :Text;
  sent @1 :UInt64;
  delivered @2 :UInt64;
  dropped @3 :UInt64;
}

struct Counter {
  name @0 :Text;
  value @1 :UInt64;
}

struct NodeStats {
  id @0 :UInt32;
  kinds @1 :List(KindCount);
  counters @2 :List(Counter);
  failed @3 :Text;           # why the node fail-stopped; empty if it did not
  role @4 :Text;
  exited @5 :Bool;           # it stopped for good (`ctx.exit()`); counters stay
}

struct MachineStats {
  machine @0 :Text;
  nodes @1 :List(NodeStats);
  uptimeMs @2 :UInt64;
  transport @3 :List(Counter);   # the data plane's own counters
}

# The control plane of one machine. A caller first proves it knows the
# cluster secret: it asks for a fresh nonce and answers with
# HMAC-SHA256(secret, nonce); only then does it get a session.
interface Agent {
  challenge @0 () -> (nonce :Data);
  authenticate @1 (proof :Data) -> (session :Session);
}

interface Session {
  # `machine` is this machine's index in the cluster; `epochMs` the cluster's
  # start (Unix ms), from which nodes' clocks count.
  spawnNode @0 (spec :NodeSpec, roster :List(Placement), machine :UInt32, epochMs :UInt64) -> ();
  killNode @1 (id :UInt32) -> ();
  setFaults @2 (faults :MessageFaults) -> ();
  isolate @3 (on :Bool) -> ();
  stats @4 () -> (stats :MachineStats);
  queryNode @5 (id :UInt32, query :Text) -> (json :Text);
  fetchLogs @6 (offset :UInt64, max :UInt32) -> (data :Data, next :UInt64);
  shutdown @7 () -> ();
  # This machine's link to `peer` (a machine name): latency and message
  # faults as the JSON of a LinkSpec; empty text removes it.
  setLink @8 (peer :Text, specJson :Text) -> ();
  # Takes the link between this machine and `peer` down or up, in the
  # direction this machine sends (`outgoing`) or receives.
  setLinkUp @9 (peer :Text, outgoing :Bool, up :Bool) -> ();
  # Ends isolation and brings every link of this machine up.
  heal @10 () -> ();
  # The nodes' records (see runtime::host::RECORDS_FILE), like fetchLogs.
  fetchRecords @11 (offset :UInt64, max :UInt32) -> (data :Data, next :UInt64);
}
