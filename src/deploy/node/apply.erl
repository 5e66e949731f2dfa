%% A script's functions (see src/peer/script.rs), after prelude.erl and
%% load.erl and migrate.erl: apply_now(Load, Remove, Force, Owner, Go,
%% Migrate) makes the node run what it is given, all of it or nothing
%% (apply_main.erl calls it; so does flight_main.erl).
%% The replaced code that made no funs is purged where nobody runs it any
%% more by a process that goes on after the answer, once the tool has let
%% go of the node (its node went down) or after a quarter of a second (a
%% held session, such as watch): OTP purges one module at a time, most of a
%% deploy's work on the node, and purging while the tool still finishes
%% would have every node's purge compete with it. Code that made funs stays
%% until a load needs its slot (purge.erl). The next run's inspect step
%% names any process still in old code.
%%
%%   Load   = [{Module, File, Binary}] to load, all at once.
%%   Remove = [Module] to unload (they were not there before).
%%   Force  = true to purge old code in the way all the same: who runs it
%%            is killed, who keeps a fun it made will die calling it.
%%   Owner  = the tool's node, or its relay (watch_owner in prelude.erl).
%%   Go     = none, or {Token, Step}: the tool writes its snapshot while
%%            the node prepares, and nothing changes (no process killed,
%%            nothing loaded) until the lock's holder has its word for this
%%            step of run Token (go, or abort if the snapshot could not be
%%            written: await_go, src/deploy/word.rs); or {Token, Step, Tell},
%%            Tell = {Pid, Ref}: the same, once the node has told the tool
%%            it prepared ({Ref, prepared} to Pid). A deploy to several
%%            nodes says go once every node has prepared.
%%   Migrate = how the processes whose callback module changes are
%%            migrated (migrate.erl): {none, Care}, or their code_change as a
%%            release upgrade calls it. They are found, and asked whether
%%            they answer, before the word; suspended only after it.
%% Value:
%%   {stuck, [{Module, Pid, Name, Why}]}: old code in the way would take
%%       these processes with it (let_go in purge.erl) and Force is false;
%%       nothing was changed.
%%   {error, [{Module, Reason}], Changed}: the node refused; Changed says
%%       whether anything was loaded before it did.
%%   aborted: the word was abort, or the lock went before it came; nothing
%%       was changed.
%%   {busy, [{Module, Pid, Name, Running}]}: processes to migrate did not
%%       answer in time (busy in a long call); nothing was changed.
%%   {migrate_failed, Causes, Left, Changed, Keeper}: a code_change failed;
%%       see migrate.erl's swap_up and swap_down.
%%   {forced, Killed, Doomed, Failed}: the forced purge killed Killed
%%       processes and doomed Doomed (as in Said below), then the node
%%       refused with Failed, one of the values above.
%%   {ok, Killed, Lingering, Running, Migrated, Said}: done; Killed = how
%%       many processes the forced purge killed; Lingering = [{Module, Pid,
%%       Name, Why}] keep a module that was removed; Running = [{Module,
%%       Md5 | false}], what the node runs of each changed module right
%%       after (the read-back of --verify, in the same round trip);
%%       Migrated = {[{Module, Pid, Name}], SuspendedUs}; Said, a list of
%%       {Tag, Value}:
%%         doomed: those that keep a fun of the old code the forced purge
%%           took, as let_go (purge.erl) names them;
%%         not_migrated: [{Module, Pid, Name, Loop}], loaded without
%%           migrating (probe in migrate.erl);
%%         watched: how many processes were watched after the change;
%%         died: [{Module, Pid, Name, Why}] of them died while watched,
%%           or apart: an observer of their own reports that to the tool
%%           once the window is over (watching in migrate.erl);
%%         took: [T0, T1, T2, T3, T4], the node's monotonic microseconds at
%%           its start, prepared, told go, loaded and migrated, watched.
apply_now(Load, Remove, Force, Owner, Go, Migrate) ->
    T0 = erlang:monotonic_time(microsecond),
    Loading = column(1, Load),
    InUse = let_go(Loading ++ Remove, Loading ++ Remove),
    case InUse =/= [] andalso not Force of
        true -> {stuck, InUse};
        false ->
            case prepare(Load) of
                {error, Errors} -> {error, Errors, false};
                {ok, Prepared} ->
                    Found = moving(Load, Migrate),
                    case probe(Found, Migrate) of
                        {[], Foreign} ->
                            Moving = without(Found, column(2, Foreign)),
                            T1 = erlang:monotonic_time(microsecond),
                            case await_go(Go) of
                                go -> commit({Prepared, Moving, Migrate}, {Loading, Remove},
                                             {Force, InUse, Foreign}, {Owner, [T0, T1]});
                                abort -> aborted
                            end;
                        {Busy, _} -> {busy, Busy}
                    end
            end
    end.
%% commit({Prepared, Moving, Migrate}, {Loading, Remove}, {Force, InUse,
%% Foreign}, {Owner, [T0, T1]}): the old code in the way goes (InUse is empty unless
%% forced), loads (migrating Moving, not Foreign), unloads Remove, then
%% watches the processes of Moving and Foreign, and those the forced purge
%% doomed, for a while, or has them watched apart (watching and observe in
%% migrate.erl); apply_now's value.
commit({Prepared, Moving, Migrate}, {Loading, Remove}, {Force, InUse, Foreign}, {Owner, Ts}) ->
    T2 = erlang:monotonic_time(microsecond),
    Watch = watching(owners(Moving) ++ [{M, P} || {M, P, _, _} <- Foreign]
                     ++ [{M, P} || {M, P, _, Why} <- InUse, Why =/= running], Migrate, Owner),
    %% OTP's purge kills who runs the old code; who keeps a fun it made
    %% dies on calling it, and is named.
    [code:purge(M) || M <- lists:usort(column(1, InUse))],
    Killed = length(lists:usort([P || {_, P, _, running} <- InUse])),
    Doomed = [E || {_, _, _, Why} = E <- InUse, Why =/= running],
    %% The code about to be replaced that made no funs: nobody can keep it
    %% but by running it, which soft_purge sees.
    Plain = Loading -- with_funs(Loading),
    case swap(Prepared, Moving, Migrate, Owner) of
        {ok, Migrated} ->
            Removed = lists:append([unload(M, Force) || M <- Remove]),
            spawn(fun() -> purge_later(Owner, Plain) end),
            %% All loaded, unless something else changed them since.
            Loaded = try lists:zip(Loading, current_md5s(Loading))
                     catch error:badarg -> [running(M) || M <- Loading]
                     end,
            T3 = erlang:monotonic_time(microsecond),
            Died = observe(Watch, Migrate, Owner),
            T4 = erlang:monotonic_time(microsecond),
            {ok, Killed, Removed, Loaded ++ [running(M) || M <- Remove], Migrated,
             [{doomed, Doomed}, {not_migrated, Foreign}, {watched, watched_count(Watch)}, {died, Died},
              {took, Ts ++ [T2, T3, T4]}]};
        %% What the forced purge did stays said when the node refuses.
        {Failed, _} when Killed > 0; Doomed =/= [] -> unwatch(Watch), {forced, Killed, Doomed, Failed};
        {Failed, _} -> unwatch(Watch), Failed
    end.
%% purge_later(Owner, Modules): the replaced code of Modules (which made no
%% funs) purged where nobody runs it, once the tool's node has let go or
%% after a quarter of a second. Old code that made funs stays until a load
%% needs its slot (let_go in purge.erl).
purge_later(Owner, Ms) ->
    watch_owner(Owner),
    receive {nodedown, Owner} -> ok; {'DOWN', _, process, Owner, _} -> ok after 250 -> ok end,
    [code:soft_purge(M) || M <- Ms].
%% unload(Module, Force) -> [{Module, Pid, Name, Why}] who keep it (let_go
%% in purge.erl), none when forced.
unload(M, Force) ->
    code:delete(M),
    case let_go([M], [M]) of
        [] -> [];
        _ when Force -> code:purge(M), [];
        Left -> Left
    end.
%% running(Module) -> {Module, Md5 | false}.
running(M) -> {M, erlang:module_loaded(M) andalso erlang:get_module_info(M, md5)}.
%% await_go(Go) -> go | abort: the tool's word for this step (see Go above).
await_go(none) -> go;
await_go(Go) ->
    Key = case Go of
        {Token, Step, {To, Ref}} -> To ! {Ref, prepared}, {Token, Step};
        _ -> Go
    end,
    case ask_holder(await, Key) of
        {ok, Word} -> Word;
        lost -> abort
    end.
%% ask_holder(Tag, Key) -> {ok, Answer} | lost: sends the lock's holder
%% {Tag, Key, self(), Ref} and waits for its {Ref, Answer}; lost when there
%% is no holder or it goes.
ask_holder(Tag, Key) ->
    case whereis(hotswap_deploy_lock) of
        undefined -> lost;
        Holder ->
            Ref = monitor(process, Holder),
            Holder ! {Tag, Key, self(), Ref},
            receive
                {Ref, Answer} -> demonitor(Ref, [flush]), {ok, Answer};
                {'DOWN', Ref, _, _, _} -> lost
            end
    end.
