%% The relay's functions (relay_main.erl says what it does).
%% reach(Targets, Ms) -> [{Node, true | false}]: every target connected to
%% at once, each in a process of its own (a target that is down takes
%% Erlang's setup time); false for one not connected within Ms.
reach(cluster, _) -> [{N, true} || N <- [node() | nodes()]];
reach(Ts, Ms) ->
    Self = self(),
    Ref = make_ref(),
    Unique = lists:usort(Ts),
    [spawn(fun() -> Self ! {Ref, T, T =:= node() orelse net_kernel:connect_node(T) =:= true} end)
     || T <- Unique],
    Got = reached(Ref, length(Unique), erlang:monotonic_time(millisecond) + Ms, #{}),
    [{T, maps:get(T, Got, false)} || T <- Ts].
%% reached(Ref, Left, Deadline, Got): Got with the answers to come, until
%% Left have come or Deadline has passed.
reached(_, 0, _, Got) -> Got;
reached(Ref, N, Deadline, Got) ->
    Wait = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive {Ref, T, Ok} -> reached(Ref, N - 1, Deadline, Got#{T => Ok})
    after Wait -> Got
    end.
%% relay_start(Tool): the relay, until the tool's node goes.
relay_start(Tool) ->
    monitor_node(node(Tool), true),
    relay(Tool, #{}).
%% relay(Tool, Expected): Expected holds the references of the addresses
%% the tool gave out ({expect, Ref}); the one message each may bring goes
%% on to the tool, and any other message is dropped.
relay(Tool, Expected) ->
    receive
        {nodedown, _} -> ok;
        {'$hotswap_relay', {expect, Ref}} -> relay(Tool, Expected#{Ref => true});
        {'$hotswap_relay', Command} -> catch relay_do(Command, Tool), relay(Tool, Expected);
        {Ref, _} = Message when is_map_key(Ref, Expected) ->
            Tool ! Message,
            relay(Tool, maps:remove(Ref, Expected));
        _ -> relay(Tool, Expected)
    end.
%% relay_do(Command, Tool): one of the commands above.
relay_do({eval, Boot, Source, Each, Ms, Common}, Tool) ->
    [spawn(fun() ->
         Bs = [{'B', maps:merge(Common, Own)}, {'S', Source}],
         Tool ! {Ref, relay_call(T, erl_eval, expr, [Boot, Bs, none, none, value], Ms)}
     end) || {T, Own, Ref} <- Each];
relay_do({call, T, M, F, Args, Ref, Ms}, Tool) ->
    spawn(fun() -> Tool ! {Ref, relay_call(T, M, F, Args, Ms)} end);
relay_do({send, T, Name, Message}, _) ->
    erlang:send({Name, T}, Message, [noconnect]);
relay_do({watch, T, Ref}, Tool) ->
    spawn(fun() ->
        monitor_node(node(Tool), true),
        monitor_node(T, true),
        receive {nodedown, T} -> Tool ! {Ref, nodedown}; {nodedown, _} -> ok end
    end).
%% relay_call(Target, M, F, Args, Ms): M:F(Args...) on Target, as rex
%% answers: the value, or {badrpc, Reason}; {badrpc, {hotswap_relay,
%% noconnection}} if Target is not in the cluster (any more).
relay_call(T, M, F, Args, Ms) ->
    try erpc:call(T, M, F, Args, Ms)
    catch
        error:{erpc, noconnection} -> {badrpc, {hotswap_relay, noconnection}};
        error:{erpc, timeout} -> {badrpc, timeout};
        error:{erpc, Why} -> {badrpc, {hotswap_relay, Why}};
        error:{exception, Why, Stack} -> {badrpc, {'EXIT', {Why, Stack}}};
        exit:{exception, Why} -> {badrpc, {'EXIT', Why}};
        throw:Value -> Value
    end.
