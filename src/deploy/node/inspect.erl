%% A script's functions (see src/peer/script.rs), after prelude.erl, for
%% the inspect step (inspect_main.erl) and the flight (flight_main.erl):
%% taking the node's deploy lock (take; hold is its holder's loop), and
%% what the node runs of a module (inspect). Read-only but for the purge of
%% old code that a changing module needs gone and nobody would die of.
%%
%% take({Token, Owner, Info, LeaseMs}, Tries) -> ok | {locked, Info}
%%   Owner is this tool's node (under --via, its relay process on the
%%   gateway: watch_owner in prelude.erl), Info what a refused run is told about the
%%   holder.
take(_, 0) -> {locked, []};
take({_, Owner, Info, _} = Lock, Tries) ->
    Parent = self(),
    Ref = make_ref(),
    spawn(fun() -> hold_if_free(Lock, Parent, Ref) end),
    receive
        {Ref, ok} -> ok;
        {Ref, taken} ->
            case who() of
                none -> take(Lock, Tries - 1);
                {Holder, Owner, _} ->
                    %% Our own previous run, releasing: wait for it to go.
                    await_release(Holder, Lock, Tries, Info);
                {Holder, Other, Held} ->
                    case is_pid(Other) andalso gone(Other) of
                        %% A finished run's, through a gateway whose relay
                        %% is gone: its holder goes as soon as it hears.
                        true -> await_release(Holder, Lock, Tries, Held);
                        false -> {locked, Held}
                    end
            end
    end.
%% await_release(Holder, Lock, Tries, Info): take(Lock, Tries - 1) once
%% Holder has gone, or {locked, Info} if it does not within 5 s.
await_release(Holder, Lock, Tries, Info) ->
    M = monitor(process, Holder),
    receive {'DOWN', M, _, _, _} -> take(Lock, Tries - 1)
    after 5000 -> demonitor(M, [flush]), {locked, Info}
    end.
%% gone(Pid): whether the process is gone (its node answers within half a
%% second).
gone(P) ->
    M = monitor(process, P),
    receive {'DOWN', M, _, _, _} -> true
    after 500 -> demonitor(M, [flush]), false
    end.
%% hold_if_free(Lock, Parent, Ref): the lock's holder, if the name is free.
hold_if_free({Token, Owner, Info, Lease}, Parent, Ref) ->
    case catch register(hotswap_deploy_lock, self()) of
        true ->
            watch_owner(Owner),
            Parent ! {Ref, ok},
            hold(Token, Owner, Info, Lease, #{});
        _ -> Parent ! {Ref, taken}
    end.
%% The lock's holder also keeps the tool's word for a step that prepared
%% before the snapshot was on disk, or before every node had prepared
%% (Words, Key => go | abort | {waiting, From, Ref}; src/deploy/word.rs,
%% and apply.erl's await_go). Another run's word is answered not_mine.
hold(Token, Owner, Info, Lease, Words) ->
    receive
        {release, Token} -> ok;
        {nodedown, Owner} -> ok;
        {'DOWN', _, process, Owner, _} -> ok;
        {who, From, Ref} -> From ! {Ref, Owner, Info}, hold(Token, Owner, Info, Lease, Words);
        {say, {Token, _} = Key, Word, From, Ref} ->
            From ! {Ref, taken},
            case Words of
                #{Key := {waiting, F, R}} -> F ! {R, Word};
                _ -> ok
            end,
            hold(Token, Owner, Info, Lease, Words#{Key => Word});
        {say, _, _, From, Ref} ->
            %% Another run's word: it waits for this holder to go.
            From ! {Ref, {not_mine, self()}},
            hold(Token, Owner, Info, Lease, Words);
        {await, {Token, _} = Key, From, Ref} ->
            case maps:get(Key, Words, none) of
                Word when Word =:= go; Word =:= abort ->
                    From ! {Ref, Word}, hold(Token, Owner, Info, Lease, Words);
                _ -> hold(Token, Owner, Info, Lease, Words#{Key => {waiting, From, Ref}})
            end;
        {await, _, From, Ref} -> From ! {Ref, abort}, hold(Token, Owner, Info, Lease, Words)
    after Lease -> ok
    end.
%% who() -> none | {Holder, Owner, Info}: the lock's holder, and whose it is.
who() ->
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
    end.
%% lookup(Keys, Map): the value of each key, in order.
lookup(Keys, Map) -> lists:zipwith(fun erlang:map_get/2, Keys, repeat(Map, Keys)).
%% where(Modules) -> #{Module => Path}: the file each would load from, in
%% the first folder of the code path that has it, as the code server
%% finds it. Lists each folder once, not a search of the path per module.
where(Ms) ->
    Files = lists:zipwith(fun erlang:'++'/2, lists:map(fun erlang:atom_to_list/1, Ms),
                          repeat(".beam", Ms)),
    Wanted = maps:from_list(lists:zip(Files, Ms)),
    Listed = [{D, Fs} || D <- code:get_path(), {ok, Fs} <- [erl_prim_loader:list_dir(D)]],
    %% Earlier folders win: maps:merge/2 keeps its second map's values.
    Paths = lists:foldl(fun maps:merge/2, #{},
        [maps:from_list([{F, filename:join(D, F)} || F <- maps:keys(maps:with(Fs, Wanted))])
         || {D, Fs} <- Listed]),
    maps:from_list([{map_get(F, Wanted), P} || {F, P} <- maps:to_list(Paths)]).
%% md5_of(Module, Path): the MD5 of the beam at Path if it is Module's,
%% else none.
md5_of(M, Path) ->
    case beam_lib:md5(Path) of
        {ok, {M, Md5}} -> Md5;
        _ -> none
    end.
%% states_of(Names, Loaded, Md5s, OnDisk) -> [State], one per name.
states_of(Names, Loaded, Md5s, OnDisk) ->
    lookup(Names, maps:merge(maps:from_list(lists:zip(Names, repeat(absent, Names))), maps:merge(
        maps:from_list([{M, {on_disk, Md5}} || {M, Md5} <- maps:to_list(OnDisk)]),
        maps:from_list(lists:zip(Loaded, lists:zip(repeat(loaded, Loaded), Md5s)))))).
%% stuck_in(Names, Changing) -> [{Index, Processes}] of the modules whose
%% old code stays, with who would die of its purge (let_go in purge.erl:
%% the old code of a module of Changing goes if nobody would).
stuck_in(Names, Changing) ->
    %% The first of a name's places: maps:from_list/1 keeps the last.
    Indexed = maps:from_list(lists:reverse(lists:zip(Names, lists:seq(1, length(Names))))),
    Kept = let_go(Names, Changing),
    [{map_get(M, Indexed), [E || {K, _, _, _} = E <- Kept, K =:= M]} || M <- lists:usort(column(1, Kept))].
%% copy(Index, Module, Md5, Paths): [{Index, Binary}] if the module's
%% file on the path (where's) is that MD5's, else [].
copy(I, M, Md5, Paths) ->
    Path = maps:get(M, Paths, none),
    case Path =/= none andalso md5_of(M, Path) =:= Md5 andalso erl_prim_loader:get_file(Path) of
        {ok, Bin, _} -> [{I, Bin}];
        _ -> []
    end.
%% inspect(Mods, Check, All) -> {States, Stuck, Copies, InTheWay}
%%   Mods = [{Module, Want, Known}]: Want is the MD5 the module is to run,
%%   or absent; Known the MD5s of it the tool has already. All true treats
%%   every module as changing; Check false skips old code and copies (a
%%   read-back after a load).
%%   States = [State], one per module: {loaded, Md5} | {on_disk, Md5} | absent,
%%   Stuck  = [{Index, [{Module, Pid, RegisteredName | undefined, Why}]}]:
%%            the processes that keep a module's old code (1-based Index in
%%            Mods; Why as let_go in purge.erl gives it),
%%   Copies = [{Index, Binary}]: the node's own beam of each module about
%%            to change whose MD5 is not Known, if it is the one on the path,
%%   InTheWay = the processes of Stuck whose modules are about to change.
%% erlang:module_loaded/1, not code:is_loaded/1: on OTP 25 the latter is
%% a call to the code server, which may be busy purging the previous
%% run's old code (a --verify read-back would wait for all of it).
inspect(Mods, Check, All) ->
    Names = column(1, Mods),
    {Loaded, Others} = lists:partition(fun erlang:module_loaded/1, Names),
    Md5s = current_md5s(Loaded),
    OnDisk = on_disk(Others),
    %% {Module, Md5 | absent}, one per name.
    Now = lists:zip(Names, lookup(Names, maps:merge(maps:merge(
        maps:from_list(lists:zip(Names, repeat(absent, Names))), OnDisk),
        maps:from_list(lists:zip(Loaded, Md5s))))),
    %% {Module, Md5 | absent} -> Index, of those about to change.
    Indexed = maps:from_list(lists:zip(Now, lists:seq(1, length(Now)))),
    Changing = case All of
        true -> Indexed;
        false -> maps:without(lists:zip(Names, column(2, Mods)), Indexed)
    end,
    Stuck = case Check of true -> stuck_in(Names, column(1, maps:keys(Changing))); false -> [] end,
    {states_of(Names, Loaded, Md5s, OnDisk),
     Stuck,
     copies(Check, Changing, Mods),
     lists:append([P || {I, P} <- Stuck, is_map_key(lists:nth(I, Now), Changing)])}.
%% copies(Check, Changing, Mods): inspect's Copies. About to change, not
%% absent, and not in the tool's store: by MD5.
copies(false, _, _) -> [];
copies(true, Changing, Mods) ->
    Keys = maps:keys(Changing),
    Copying = maps:without([absent | lists:append(column(3, Mods))],
                           maps:from_list(lists:zip(column(2, Keys), Keys))),
    case maps:values(Copying) of
        [] -> [];
        Copied ->
            Paths = where(column(1, Copied)),
            lists:append([copy(map_get(K, Changing), M, Md5, Paths) || {M, Md5} = K <- Copied])
    end.
%% on_disk(Modules) -> #{Module => Md5} of those with a beam on the code
%% path; no search when every module is loaded.
on_disk([]) -> #{};
on_disk(Ms) ->
    maps:from_list([{M, Md5} || {M, P} <- maps:to_list(where(Ms)), Md5 <- [md5_of(M, P)], Md5 =/= none]).
