%% The relay's functions (relay_main.erl says what it does).
%% reach(Targets) -> [{Node, true | false}].
reach(cluster) -> [{N, true} || N <- [node() | nodes()]];
reach(Ts) -> [{T, T =:= node() orelse net_kernel:connect_node(T) =:= true} || T <- Ts].
%% relay_start(Tool): the relay, until the tool's node goes.
relay_start(Tool) ->
    monitor_node(node(Tool), true),
    relay(Tool).
relay(Tool) ->
    receive
        {nodedown, _} -> ok;
        {'$hotswap_relay', Command} -> catch relay_do(Command, Tool), relay(Tool);
        Message -> Tool ! Message, relay(Tool)
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
