%% Bench only: hotswap-node's flight as compiled code, driven by an
%% operator node the way the tool drives it. hotswap_flight is generated
%% by benches/support from src/deploy/node/ (the same functions and main
%% part the tool sends, compiled instead of evaluated by erl_eval); the
%% protocol is the tool's for several nodes: each node takes the lock,
%% inspects, prepares and tells, then loads once the operator has said go
%% to its lock's holder. The difference from the tool's own flight is the
%% price of installing nothing on the node.
-module(compiled_flight).
-export([time/2]).

%% time(Nodes, Dir) -> Microseconds: the flight of Dir's beams to Nodes,
%% from the requests leaving until every node has answered it loaded them.
time(Nodes, Dir) ->
    Load = [{list_to_atom(filename:basename(F, ".beam")), F, element(2, file:read_file(F))}
            || F <- filelib:wildcard(Dir ++ "/*.beam")],
    Names = [M || {M, _, _} <- Load],
    [ok = install(N) || N <- Nodes],
    [ok = erpc:call(N, lists, foreach, [fun code:soft_purge/1, Names]) || N <- Nodes],
    Token = make_ref(),
    Asks = [{N, bindings(N, Token, Load)} || N <- Nodes],
    T0 = erlang:monotonic_time(microsecond),
    Sent = [{N, Ref, erpc:send_request(N, hotswap_flight, flight, [B])} || {N, #{'Go' := {_, _, {_, Ref}}} = B} <- Asks],
    [receive {Ref, prepared} -> ok after 5000 -> exit({not_prepared, N}) end || {N, Ref, _} <- Sent],
    [{hotswap_deploy_lock, N} ! {say, {Token, flight}, go, self(), make_ref()} || N <- Nodes],
    Answers = [erpc:receive_response(Req, 5000) || {_, _, Req} <- Sent],
    T = erlang:monotonic_time(microsecond) - T0,
    [{landed, _, {ok, 0, [], _, _, _}} = A || A <- Answers],
    [{hotswap_deploy_lock, N} ! {release, Token} || N <- Nodes],
    T.

install(Node) ->
    case erpc:call(Node, erlang, module_loaded, [hotswap_flight]) of
        true -> ok;
        false ->
            {hotswap_flight, Bin, File} = code:get_object_code(hotswap_flight),
            {module, hotswap_flight} = erpc:call(Node, code, load_binary, [hotswap_flight, File, Bin]),
            ok
    end.

%% The bindings the tool's flight has, for a node whose states it knows.
bindings(Node, Token, Load) ->
    Running = [erpc:call(Node, erlang, get_module_info, [M, md5]) || {M, _, _} <- Load],
    #{'Lock' => {Token, node(), [], 5000},
      'Mods' => [{M, erlang:md5(Bin), [Md5]} || {{M, _, Bin}, Md5} <- lists:zip(Load, Running)],
      'Check' => true, 'All' => false,
      'Believed' => [{loaded, Md5} || Md5 <- Running],
      'Load' => Load, 'Remove' => [], 'Force' => false, 'Owner' => node(),
      'Migrate' => {up, [], 5000, 30000, {otp, 0}},
      'Go' => {Token, flight, {self(), make_ref()}}}.
