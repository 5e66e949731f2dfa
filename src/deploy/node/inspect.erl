%% A script's funs (see src/dist/script.rs), after prelude.erl and
%% load.erl, for the inspect step (inspect_main.erl) and the flight
%% (flight_main.erl): taking the node's deploy lock (Take; Hold is its
%% holder), and what the node runs of a module (Inspect). Read-only but
%% for soft purges, which only drop old code nobody runs.
%%
%% Take({Token, Owner, Info, LeaseMs}, Tries) -> ok | {locked, Info}
%%   Owner is this tool's node, Info what a refused run is told about the
%%   holder.
%% Inspect(Mods, Check, All): what the node runs of each module (below).
%% The lock's holder also keeps the tool's word for a step that prepared
%% before the snapshot was on disk, or before every node had prepared
%% (Words, Key => go | abort | {waiting, From, Ref}; src/deploy/word.rs,
%% and apply.erl's AwaitGo). Another run's word is not acknowledged.
Hold = fun Hold(Token, Owner, Info, Lease, Words) ->
    receive
        {release, Token} -> ok;
        {nodedown, Owner} -> ok;
        {who, From, Ref} -> From ! {Ref, Owner, Info}, Hold(Token, Owner, Info, Lease, Words);
        {say, {Token, _} = Key, Word, From, Ref} ->
            From ! {Ref, taken},
            case Words of
                #{Key := {waiting, F, R}} -> F ! {R, Word};
                _ -> ok
            end,
            Hold(Token, Owner, Info, Lease, Words#{Key => Word});
        {await, {Token, _} = Key, From, Ref} ->
            case maps:get(Key, Words, none) of
                Word when Word =:= go; Word =:= abort ->
                    From ! {Ref, Word}, Hold(Token, Owner, Info, Lease, Words);
                _ -> Hold(Token, Owner, Info, Lease, Words#{Key => {waiting, From, Ref}})
            end;
        {await, _, From, Ref} -> From ! {Ref, abort}, Hold(Token, Owner, Info, Lease, Words)
    after Lease -> ok
    end
end,
Who = fun() ->
    case whereis(hotswap_deploy_lock) of
        undefined -> none;
        Holder ->
            Ref = monitor(process, Holder),
            Holder ! {who, self(), Ref},
            receive
                {Ref, O, I} -> demonitor(Ref, [flush]), {Holder, O, I};
                {'DOWN', Ref, _, _, _} -> none
            after 2000 -> demonitor(Ref, [flush]), {Holder, unknown, []}
            end
    end
end,
Take = fun Take(_, 0) -> {locked, []};
           Take({Token, Owner, Info, Lease} = L, Tries) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() ->
        case catch register(hotswap_deploy_lock, self()) of
            true ->
                monitor_node(Owner, true),
                Parent ! {Ref, ok},
                Hold(Token, Owner, Info, Lease, #{});
            _ -> Parent ! {Ref, taken}
        end
    end),
    receive
        {Ref, ok} -> ok;
        {Ref, taken} ->
            case Who() of
                none -> Take(L, Tries - 1);
                {Holder, Owner, _} ->
                    %% Our own previous run, releasing: wait for it to go.
                    M = monitor(process, Holder),
                    receive {'DOWN', M, _, _, _} -> Take(L, Tries - 1)
                    after 5000 -> demonitor(M, [flush]), {locked, Info}
                    end;
                {_, _, Held} -> {locked, Held}
            end
    end
end,
%% Lookup(Keys, Map): the value of each key, in order.
Lookup = fun(Keys, Map) -> lists:zipwith(fun erlang:map_get/2, Keys, Repeat(Map, Keys)) end,
%% Where(Modules) -> #{Module => Path}: the file each would load from, in
%% the first folder of the code path that has it, as the code server
%% finds it. Lists each folder once, not a search of the path per module.
Where = fun(Ms) ->
    Files = lists:zipwith(fun erlang:'++'/2, lists:map(fun erlang:atom_to_list/1, Ms),
                          Repeat(".beam", Ms)),
    Wanted = maps:from_list(lists:zip(Files, Ms)),
    In = fun(D, Found) ->
        case erl_prim_loader:list_dir(D) of
            {ok, Fs} -> maps:merge(maps:map(fun(F, _) -> filename:join(D, F) end,
                                            maps:with(Fs, Wanted)), Found);
            _ -> Found
        end
    end,
    Paths = case Ms of [] -> #{}; _ -> lists:foldl(In, #{}, code:get_path()) end,
    maps:from_list([{map_get(F, Wanted), P} || {F, P} <- maps:to_list(Paths)])
end,
%% The MD5 of the beam at Path if it is Module's, else none.
Md5Of = fun(M, Path) ->
    case beam_lib:md5(Path) of
        {ok, {M, Md5}} -> Md5;
        _ -> none
    end
end,
%% StatesOf(Names, Loaded, Md5s, OnDisk) -> [State], one per name.
StatesOf = fun(Names, Loaded, Md5s, OnDisk) ->
    Lookup(Names, maps:merge(maps:from_list(lists:zip(Names, Repeat(absent, Names))), maps:merge(
        maps:map(fun(_, Md5) -> {on_disk, Md5} end, OnDisk),
        maps:from_list(lists:zip(Loaded, lists:zip(Repeat(loaded, Loaded), Md5s))))))
end,
%% StuckIn(Names) -> [{Index, Processes}] of those whose old code is in use
%% (old code nobody runs is dropped).
StuckIn = fun(Names) ->
    Old = lists:filter(fun erlang:check_old_code/1, Names),
    [{length(lists:takewhile(fun(N) -> N =/= M end, Names)) + 1, InOld(M)}
     || M <- Old, not code:soft_purge(M)]
end,
%% Copy(Index, Module, Md5, Paths): [{Index, Binary}] if the module's
%% file on the path (Where's) is that MD5's, else [].
Copy = fun(I, M, Md5, Paths) ->
    Path = maps:get(M, Paths, none),
    case Path =/= none andalso Md5Of(M, Path) =:= Md5 andalso erl_prim_loader:get_file(Path) of
        {ok, Bin, _} -> [{I, Bin}];
        _ -> []
    end
end,
%% Inspect(Mods, Check, All) -> {States, Stuck, Copies, InTheWay}
%%   Mods = [{Module, Want, Known}]: Want is the MD5 the module is to run,
%%   or absent; Known the MD5s of it the tool has already. All true treats
%%   every module as changing; Check false skips old code and copies (a
%%   read-back after a load).
%%   States = [State], one per module: {loaded, Md5} | {on_disk, Md5} | absent,
%%   Stuck  = [{Index, [{Module, Pid, RegisteredName | undefined}]}]: the
%%            processes that keep a module's old code (1-based Index in Mods),
%%   Copies = [{Index, Binary}]: the node's own beam of each module about
%%            to change whose MD5 is not Known, if it is the one on the path,
%%   InTheWay = the processes of Stuck whose modules are about to change.
%% erlang:module_loaded/1, not code:is_loaded/1: on OTP 25 the latter is
%% a call to the code server, which may be busy purging the previous
%% run's old code (a --verify read-back would wait for all of it).
Inspect = fun(Mods, Check, All) ->
    Names = Column(1, Mods),
    {Loaded, Others} = lists:partition(fun erlang:module_loaded/1, Names),
    Md5s = CurrentMd5s(Loaded),
    OnDisk = maps:filtermap(fun(M, P) ->
        case Md5Of(M, P) of none -> false; Md5 -> {true, Md5} end
    end, Where(Others)),
    %% {Module, Md5 | absent}, one per name.
    Now = lists:zip(Names, Lookup(Names, maps:merge(maps:merge(
        maps:from_list(lists:zip(Names, Repeat(absent, Names))), OnDisk),
        maps:from_list(lists:zip(Loaded, Md5s))))),
    %% {Module, Md5 | absent} -> Index, of those about to change.
    Indexed = maps:from_list(lists:zip(Now, lists:seq(1, length(Now)))),
    Changing = case All of
        true -> Indexed;
        false -> maps:without(lists:zip(Names, Column(2, Mods)), Indexed)
    end,
    %% About to change, not absent, and not in the tool's store: by MD5.
    Copying = case Check of
        false -> #{};
        true ->
            Keys = maps:keys(Changing),
            maps:without([absent | lists:append(Column(3, Mods))],
                         maps:from_list(lists:zip(Column(2, Keys), Keys)))
    end,
    Paths = Where(Column(1, maps:values(Copying))),
    Stuck = case Check of true -> StuckIn(Names); false -> [] end,
    {StatesOf(Names, Loaded, Md5s, OnDisk),
     Stuck,
     lists:append([Copy(map_get(K, Changing), M, Md5, Paths)
                   || {M, Md5} = K <- maps:values(Copying)]),
     lists:append([P || {I, P} <- Stuck, is_map_key(lists:nth(I, Now), Changing)])}
end,
