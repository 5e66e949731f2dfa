%% The relay of --via (src/reach/gateway.rs), evaluated on the gateway: a
%% process this script spawns there, which lives as long as the tool's
%% connection to the gateway and carries everything between the tool and
%% the targets, which the tool cannot reach (nor they it). Nothing is
%% installed: the relay is this script's code, run by erl_eval.
%%
%% - {'$hotswap_relay', {eval, Boot, Source, Each, Ms, Common}}: for each
%%   {Target, Own, Ref} of Each, erl_eval:expr(Boot, [{'B', Bindings},
%%   {'S', Source}], none, none, value) on Target, Bindings being Common
%%   merged with Own; the value, as rex answers it, goes to the tool as
%%   {Ref, Value}. The module binaries in Common cross the tool's link once
%%   and the cluster's own connections once per target.
%% - {'$hotswap_relay', {call, Target, M, F, Args, Ref, Ms}}: the same for
%%   one function call.
%% - {'$hotswap_relay', {send, Target, Name, Message}}: Message to the
%%   process registered as Name on Target.
%% - {'$hotswap_relay', {watch, Target, Ref}}: {Ref, nodedown} to the tool
%%   when Target leaves the cluster.
%% - {'$hotswap_relay', {expect, Ref}}: the tool gave out the address
%%   {Relay, Ref}; the one {Ref, Term} sent to it (a target's {Ref,
%%   prepared}, a lock holder's acknowledgement) is passed on to the tool
%%   as it came. Any other message is dropped.
%%
%% The targets' lock holders watch the relay: it ends when the tool's
%% connection does, and with it every lock this run took.
%%
%% Bindings: Tool = the tool's process; Targets = [Node], or cluster (this
%% node and every visible node it is connected to); Ms = how long the
%% targets may take to connect.
%% Value: {Relay, [{Node, Reached}]}: Reached says whether this node is
%% connected to Node (it tries to connect to all at once if it is not).
Relay = spawn(fun() -> relay_start(Tool) end),
{Relay, reach(Targets, Ms)}.
