%% A script's functions (see src/dist/script.rs), after prelude.erl and
%% load.erl and migrate.erl: apply_now(Load, Remove, Force, Owner, Go,
%% Migrate) makes the node run what it is given, all of it or nothing
%% (apply_main.erl calls it; so does flight_main.erl).
%% The replaced code is purged where nobody runs it any more by a process
%% that goes on after the answer, once the tool has let go of the node (its
%% node went down) or after a quarter of a second (a held session, such as
%% watch): OTP purges one module at a time, most of a deploy's work on the
%% node, and purging while the tool still finishes would have every node's
%% purge compete with it. The next run's inspect step names any process
%% still in old code.
%%
%%   Load   = [{Module, File, Binary}] to load, all at once.
%%   Remove = [Module] to unload (they were not there before).
%%   Force  = true to kill processes that keep old code in the way.
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
%%            migrated (migrate.erl): none, or their code_change as a
%%            release upgrade calls it. They are found, and asked whether
%%            they answer, before the word; suspended only after it.
%% Value:
%%   {stuck, [{Module, Pid, Name}]}: old code in use and Force is false;
%%       nothing was changed.
%%   {error, [{Module, Reason}], Changed}: the node refused; Changed says
%%       whether anything was loaded before it did.
%%   aborted: the word was abort, or the lock went before it came; nothing
%%       was changed.
%%   {busy, [{Module, Pid, Name, Running}]}: processes to migrate did not
%%       answer in time (busy in a long call); nothing was changed.
%%   {migrate_failed, Causes, Left, Changed, Keeper}: a code_change failed;
%%       see migrate.erl's swap_up and swap_down.
%%   {ok, Killed, Lingering, Running, Migrated}: done; Lingering =
%%       [{Module, Pid, Name}] still run a module that was removed; Running =
%%       [{Module, Md5 | false}], what the node runs of each changed module
%%       right after (the read-back of --verify, in the same round trip);
%%       Migrated = {[{Module, Pid, Name}], SuspendedUs}.
apply_now(Load, Remove, Force, Owner, Go, Migrate) ->
    Loading = column(1, Load),
    Blocking = [M || M <- lists:filter(fun erlang:check_old_code/1, Loading ++ Remove),
                     not code:soft_purge(M)],
    InUse = lists:append([in_old(M) || M <- Blocking]),
    case InUse =/= [] andalso not Force of
        true -> {stuck, InUse};
        false ->
            case prepare(Load) of
                {error, Errors} -> {error, Errors, false};
                {ok, Prepared} ->
                    Moving = moving(Load, Migrate),
                    case busy(Moving, Migrate) of
                        [] ->
                            case await_go(Go) of
                                go -> commit({Prepared, Moving, Migrate}, {Loading, Remove},
                                             {Force, Blocking, InUse}, Owner);
                                abort -> aborted
                            end;
                        Busy -> {busy, Busy}
                    end
            end
    end.
%% commit({Prepared, Moving, Migrate}, {Loading, Remove},
%%        {Force, Blocking, InUse}, Owner):
%% kills what is in the way if forced, loads (migrating Moving), unloads
%% Remove; apply_now's value.
commit({Prepared, Moving, Migrate}, {Loading, Remove}, {Force, Blocking, InUse}, Owner) ->
    Killed = case Force of
        true -> [code:purge(M) || M <- Blocking], length(InUse);
        false -> 0
    end,
    case swap(Prepared, Moving, Migrate, Owner) of
        {ok, Migrated} ->
            Removed = lists:append([unload(M, Force) || M <- Remove]),
            spawn(fun() -> purge_later(Owner, Loading) end),
            %% All loaded, unless something else changed them since.
            Loaded = try lists:zip(Loading, current_md5s(Loading))
                     catch error:badarg -> [running(M) || M <- Loading]
                     end,
            {ok, Killed, Removed, Loaded ++ [running(M) || M <- Remove], Migrated};
        {Failed, _} -> Failed
    end.
%% purge_later(Owner, Loading): the replaced code's purge, once the tool's
%% node has let go or after a quarter of a second.
purge_later(Owner, Loading) ->
    watch_owner(Owner),
    receive {nodedown, Owner} -> ok; {'DOWN', _, process, Owner, _} -> ok after 250 -> ok end,
    [code:soft_purge(M) || M <- Loading].
%% unload(Module, Force) -> [{Module, Pid, Name}] still running it.
unload(M, Force) ->
    code:delete(M),
    case code:soft_purge(M) of
        true -> [];
        false when Force -> code:purge(M), [];
        false -> in_old(M)
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
