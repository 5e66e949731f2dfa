%% Migrating the processes whose callback module changes (functions, after
%% prelude.erl and load.erl; apply.erl calls them): suspended, code_change,
%% resumed, as a release upgrade's {update, Mod, {advanced, Extra}} does
%% (sasl's release_handler_1 and systools_rc), from a plain deploy.
%%
%%   Migrate = {none, {Loops, ObserveMs}}
%%           | {Dir, Extra, StepMs, LeaseMs, {Loops, ObserveMs}}
%%           | {release, Keeper}
%%     Dir = up: a deploy. Suspend, load, the new code's code_change(Vsn,
%%           State, Extra) with Vsn the vsn attribute of the code that ran
%%           before, resume.
%%     Dir = down: a rollback, or the undo of a deploy. Suspend, the code
%%           running now converts its state back, code_change({down, Vsn},
%%           State, Extra) with Vsn that of the code about to load, then
%%           load, resume.
%%     StepMs bounds each of suspend, code_change and resume (all
%%     processes at once); LeaseMs is how long processes are held
%%     suspended for the tool's undo after a failed code_change (Keeper).
%%     Loops = otp: only processes whose sys loop is OTP's own
%%     (gen_server, gen_statem, gen_event; a supervisor is a gen_server)
%%     are migrated: another loop (a fork of gen_server, a hand-written
%%     one) may not fit its own code_change's answer to what it does next,
%%     so its processes load without migrating and are named (probe).
%%     Loops = any migrates them all the same.
%%     ObserveMs: how long after the change the processes it migrated or
%%     passed over are watched for dying (observe); {Ms, {To, Tag}}: as
%%     long, by an observer that sends To {Tag, {observed, Died}} then
%%     (watching), so that the answer need not wait.
%%     {release, Keeper}: the undo of a node whose code_change failed:
%%     load, then Keeper resumes the processes it holds.
%%
%% Which processes: those whose callback module is a changing module that
%% is loaded now and whose code on the far side of the change exports
%% code_change/3 or /4. gen_server, gen_statem and Elixir's GenServer are
%% found by proc_lib's initial call ({Module, init, 1}, whoever started
%% them, supervisor or not); gen_event managers (a supervisor's dynamic
%% children) by their handlers.
%%
%% moving(Load, Migrate) -> [{Module, Vsn, [Pid]}]
moving(_, {none, _}) -> [];
moving(_, {release, _}) -> [];
moving(Load, {Dir, _, _, _, _}) ->
    Running = maps:to_list(running_as_callback(lists:filter(fun erlang:module_loaded/1, column(1, Load)))),
    [{M, vsn_for(Dir, M, Bin), Ps} || {M, Ps} <- Running, {_, _, Bin} <- [lists:keyfind(M, 1, Load)],
                                      migrates(Dir, M, Bin)].
%% running_as_callback(Modules) -> #{Module => [Pid]}: the processes with
%% one of Modules as callback module: by how they started (proc_lib's
%% initial call), or by the loop they run now (entered). Compiled code
%% looks at every process and every module; interpreted code only at the
%% modules some process runs, at the event managers' handlers and at the
%% few loops that name a module (interpreting per process or per module
%% would cost milliseconds on a node of thousands of processes, or a deploy
%% of hundreds of modules).
running_as_callback([]) -> #{};
running_as_callback(Ms) ->
    Ps = processes(),
    Starts = lists:map(fun proc_lib:translate_initial_call/1, Ps),
    Started = lists:zip(lists:zipwith(fun erlang:element/2, repeat(1, Starts), Starts), Ps),
    Set = lists:usort(Ms),
    Callbacks = ordsets:intersection(lists:usort(column(1, Started)), Set),
    ByStart = [{M, P} || M <- Callbacks, P <- proplists:get_all_values(M, Started)],
    maps:merge(handlers(Set, proplists:get_all_values(gen_event, Started)),
               group(ByStart ++ entered(Set, Ps -- column(2, ByStart)))).
%% entered(Set, Pids) -> [{Module, Pid}]: the gen_servers and gen_statems
%% among Pids, idle in their loop, whose callback module is in the ordset
%% Set though they started under another module (gen_server:enter_loop
%% from an init of another module): the loop's frame of their backtrace
%% names it, as each OTP release keeps it (a bare atom on OTP 25, the
%% callback funs from 27 on, gen_statem's module list). Match specs, run
%% compiled, pick the idle behaviours out of every process.
entered(Set, Ps) ->
    Now = lists:zip(lists:zipwith(fun erlang:process_info/2, Ps, repeat(current_function, Ps)), Ps),
    Looping = ets:match_spec_run(Now, ets:match_spec_compile(
        [{{{current_function, {L, '_', '_'}}, '$1'}, [], [{{L, '$1'}}]} || L <- [gen_server, gen_statem]])),
    Traces = lists:zip(lists:zipwith(fun erlang:process_info/2, column(2, Looping),
                                     repeat(backtrace, Looping)), Looping),
    Frames = ets:match_spec_run(Traces, ets:match_spec_compile(
        [{{{backtrace, '$1'}, {'$2', '$3'}}, [], [{{'$1', '$2', '$3'}}]}])),
    Shown = [{M, unicode:characters_to_binary(io_lib:format("~tw", [M]))} || M <- Set],
    Pattern = binary:compile_pattern(lists:append(
        [loop_marks(L, B) || {_, B} <- Shown, L <- [gen_server, gen_statem]])),
    Hits = proplists:delete(nomatch, lists:zip(lists:zipwith(fun binary:match/2, column(1, Frames),
                                                             repeat(Pattern, Frames)), Frames)),
    [{M, P} || {_, {Bt, L, P}} <- Hits, First <- [hd(binary:split(Bt, <<"\n\n">>))],
               {M, B} <- Shown, binary:match(First, loop_marks(L, B)) =/= nomatch].
%% loop_marks(Loop, Module) -> the ways the loop's frame shows its callback
%% module (Module as the VM prints it): a gen_server's on OTP 25 (the atom
%% alone in a register) and from 27 on (its handle_call fun), a
%% gen_statem's module list (in its params).
loop_marks(gen_server, B) ->
    [<<")     ", B/binary, "\n">>, <<"fun ", B/binary, ":handle_call/3">>];
loop_marks(gen_statem, B) ->
    [<<",[", B/binary, "],">>, <<",[", B/binary, ",">>].
%% handlers(Set, Managers) -> #{Module => [Pid]}: the gen_event managers
%% running a module of the ordset Set as a handler, asked as
%% release_handler asks a supervisor's dynamic child (get_modules); one
%% that does not answer within a second is left out.
handlers(_, []) -> #{};
handlers(Set, Managers) ->
    group([{M, P} || P <- Managers, {ok, Mods} <- [catch gen:call(P, self(), get_modules, 1000)],
                     M <- Mods, ordsets:is_element(M, Set)]).
%% group([{Key, Value}]) -> #{Key => [Value]}.
group(Pairs) ->
    lists:foldl(fun({K, V}, Acc) -> Acc#{K => [V | maps:get(K, Acc, [])]} end, #{}, Pairs).
%% migrates(Dir, Module, Binary): whether the code on the far side of the
%% change (the binary's going up, the loaded module's going down) exports
%% code_change.
migrates(up, _, Bin) ->
    case beam_lib:chunks(Bin, [exports]) of
        {ok, {_, [{exports, Es}]}} ->
            lists:member({code_change, 3}, Es) orelse lists:member({code_change, 4}, Es);
        _ -> false
    end;
migrates(down, M, _) ->
    erlang:function_exported(M, code_change, 3) orelse erlang:function_exported(M, code_change, 4).
%% vsn_for(Dir, Module, Binary): code_change's first argument, as
%% release_handler passes it.
vsn_for(up, M, _) -> vsn(erlang:get_module_info(M, attributes));
vsn_for(down, _, Bin) ->
    case beam_lib:chunks(Bin, [attributes]) of
        {ok, {_, [{attributes, As}]}} -> {down, vsn(As)};
        _ -> {down, undefined}
    end.
vsn(Attributes) ->
    case proplists:get_value(vsn, Attributes, undefined) of
        [V] = Vsn -> case io_lib:printable_unicode_list(Vsn) of true -> Vsn; false -> V end;
        Vsn -> Vsn
    end.
%% owners(Moving) -> [{Module, Pid}].
owners(Moving) -> lists:append([lists:zip(repeat(M, Ps), Ps) || {M, _, Ps} <- Moving]).
%% deadline(Ms): an absolute time for gen:receive_response/2, Ms from now.
deadline(Ms) -> {abs, erlang:monotonic_time(millisecond) + Ms}.
%% ask_all(Pids, Requests, Deadline) -> [Response], one per pid: every
%% system message sent before the first answer is awaited.
%%   Response = {reply, Reply} | timeout | {error, {Why, Pid}}
ask_all(Ps, Reqs, Deadline) ->
    Ids = lists:zipwith3(fun gen:send_request/3, Ps, repeat(system, Ps), Reqs),
    lists:zipwith(fun gen:receive_response/2, Ids, repeat(Deadline, Ids)).
%% all_ok(Responses): whether every one is {reply, ok}.
all_ok([]) -> true;
all_ok(Rs) -> lists:usort(Rs) =:= [{reply, ok}].
%% probe(Moving, Migrate) -> {Busy, Foreign}: the processes to migrate,
%% asked for their status while the node waits for the word (then nothing
%% changes anywhere). Busy = [{Module, Pid, Name, Running}]: those that do
%% not answer in time (in a long call). Foreign = [{Module, Pid, Name,
%% Loop}]: with Loops = otp, those whose sys loop is another's (Loop, as
%% sys:get_status names it), to load without migrating. One that has
%% exited is neither.
probe([], _) -> {[], []};
probe(Moving, {_, _, StepMs, _, {Loops, _}}) ->
    Owners = owners(Moving),
    Ps = column(2, Owners),
    Rs = lists:zip(Owners, ask_all(Ps, repeat(get_status, Ps), deadline(StepMs))),
    {[{M, P, name_of(P), doing(P)} || {{M, P}, timeout} <- Rs],
     [{M, P, name_of(P), atom_to_binary(L, utf8)}
      || Loops =:= otp, {{M, P}, {reply, {status, _, {module, L}, _}}} <- Rs,
         not lists:member(L, [gen_server, gen_statem, gen_event])]}.
%% without(Moving, Pids): Moving but for Pids.
without(Moving, []) -> Moving;
without(Moving, Gone) -> [{M, V, Ps -- Gone} || {M, V, Ps} <- Moving].
%% watching(Watching, Migrate, Owner) -> Watch: the processes of Watching
%% ([{Module, Pid}]) monitored before the change, for observe. By this
%% process ({here, [{Monitor, Module, Pid, Name}]}), or, when the tool is
%% told apart (Migrate's window is {Ms, {To, Tag}}: a held session, which
%% need not wait for the window to send its next change), by an observer
%% of their own ({apart, Observer, Count}) that reports once the window is
%% over, then ends; or as soon as the tool (Owner, see watch_owner) goes,
%% as it has nobody to report to.
watching([], _, _) -> {here, []};
watching(Watching, Migrate, Owner) ->
    case window(Migrate) of
        {Ms, To} ->
            Self = self(),
            Observer = spawn(fun() -> observer(Self, Watching, Ms, {To, Owner}) end),
            Ref = monitor(process, Observer),
            receive
                {Observer, watching} -> demonitor(Ref, [flush]), {apart, Observer, length(Watching)};
                {'DOWN', Ref, process, _, _} -> watching(Watching, {none, {any, Ms}}, Owner)
            end;
        _ -> {here, [{monitor(process, P), M, P, name_of(P)} || {M, P} <- Watching]}
    end.
%% window(Migrate): how long to watch after the change, in milliseconds,
%% or {Ms, To} to have it reported to To apart.
window({_, _, _, _, {_, Window}}) -> Window;
window({none, {_, Window}}) -> Window;
window(_) -> 0.
%% observer(Parent, Watching, Ms, {{To, Tag}, Owner}): monitors Watching,
%% tells Parent so, and once Parent has changed the code ({Parent, start}),
%% watches them Ms (or until every one is gone) and sends To {Tag,
%% {observed, Died}}, Died as observe's value; Parent stopped ({Parent,
%% stop}) or gone before, nothing. Owner (see watch_owner) gone, before
%% or during the watch, ends it: nobody would hear.
observer(Parent, Watching, Ms, {{To, Tag}, Owner}) ->
    Watched = [{monitor(process, P), M, P, name_of(P)} || {M, P} <- Watching],
    Up = monitor(process, Parent),
    Parent ! {self(), watching},
    watch_owner(Owner),
    receive
        {Parent, start} ->
            demonitor(Up, [flush]),
            To ! {Tag, {observed, died(Watched, {erlang:monotonic_time(millisecond) + Ms, Owner}, [])}};
        {Parent, stop} -> ok;
        {'DOWN', Up, process, _, _} -> ok;
        {nodedown, Owner} -> ok;
        {'DOWN', _, process, Owner, _} -> ok
    end.
%% observe(Watch, Migrate, Owner) -> [{Module, Pid, Name, Why}] | apart:
%% of the processes watching/3 monitored before the change, those that
%% died before the window passed, with their exit reason (one already
%% gone when it was monitored is not of the change); apart when their
%% observer reports them. The watch ends early once every one of them is
%% gone, or once the tool (Owner, see watch_owner) is: nobody would hear.
observe({here, []}, _, _) -> [];
observe({apart, Observer, _}, _, _) -> Observer ! {self(), start}, apart;
observe({here, Watched}, Migrate, Owner) ->
    Ms = case window(Migrate) of {W, _} -> W; W -> W end,
    watch_owner(Owner),
    died(Watched, {erlang:monotonic_time(millisecond) + Ms, Owner}, []).
%% unwatch(Watch): no observing after all (the change failed).
unwatch({apart, Observer, _}) -> Observer ! {self(), stop}, ok;
unwatch({here, Watched}) -> [demonitor(R, [flush]) || {R, _, _, _} <- Watched], ok.
%% watched_count(Watch): how many processes it watches.
watched_count({apart, _, N}) -> N;
watched_count({here, Watched}) -> length(Watched).
%% died(Watched, {Until, Owner}, Died): observe's value, once Until has
%% passed, every process watched is gone (nothing is left to watch), or
%% Owner went.
died([], _, Died) -> with_why(Died);
died(Watched, {Until, Owner} = Ends, Died) ->
    Left = max(0, Until - erlang:monotonic_time(millisecond)),
    receive
        {nodedown, Owner} -> unwatch({here, Watched}), with_why(Died);
        {'DOWN', _, process, Owner, _} -> unwatch({here, Watched}), with_why(Died);
        {'DOWN', Ref, process, _, Why} ->
            case lists:keytake(Ref, 1, Watched) of
                %% Gone before it was watched: before the change, not of it.
                {value, _, Rest} when Why =:= noproc -> died(Rest, Ends, Died);
                {value, {Ref, M, P, Name}, Rest} -> died(Rest, Ends, [{M, P, Name, Why} | Died]);
                false -> died(Watched, Ends, Died)
            end
    after Left ->
        [demonitor(R, [flush]) || {R, _, _, _} <- Watched],
        with_why(Died)
    end.
%% with_why(Died): [{Module, Pid, Name, Why}], in the order they died, each
%% exit reason as text.
with_why(Died) ->
    [{M, P, Name, unicode:characters_to_binary(io_lib:format("~0tP", [Why, 12]))}
     || {M, P, Name, Why} <- lists:reverse(Died)].
%% doing(Pid): the function a process runs, for the user.
doing(P) ->
    case process_info(P, current_function) of
        {current_function, {M, F, A}} -> unicode:characters_to_binary(io_lib:format("~0tp:~0tp/~b", [M, F, A]));
        _ -> <<"nothing (it has exited)">>
    end.
%% swap(Prepared, Moving, Migrate, Owner) -> {Loaded, Migrated}
%%   Loaded = finish's value, or {busy, Busy} (nothing loaded), or
%%            swap_up's or swap_down's {migrate_failed, ...};
%%   Migrated = {[{Module, Pid, Name}], SuspendedUs}, Name as
%%              process_info(Pid, registered_name) gives it.
%% No process is left suspended by an error of this script.
swap(Prepared, [], {release, Keeper}, _) ->
    Loaded = finish(Prepared),
    resume_kept(Keeper),
    {Loaded, {[], 0}};
swap(Prepared, [], _, _) -> {finish(Prepared), {[], 0}};
swap(Prepared, Moving0, {Dir, Extra, StepMs, LeaseMs, _}, Owner) ->
    Owners0 = owners(Moving0),
    Started = erlang:monotonic_time(microsecond),
    Rs = ask_all(column(2, Owners0), repeat(suspend, Owners0), deadline(StepMs)),
    %% One that exited since the probe is not in anyone's way.
    Moving = without(Moving0, [P || {{_, P}, {error, _}} <- lists:zip(Owners0, Rs)]),
    Owners = owners(Moving),
    Ps = column(2, Owners),
    case lists:member(timeout, Rs) of
        true ->
            resume(Ps, StepMs),
            {{busy, [{M, P, name_of(P), doing(P)} || {{M, P}, timeout} <- lists:zip(Owners0, Rs)]}, {[], 0}};
        false ->
            Steps = {Prepared, Moving, Extra, StepMs},
            try
                Loaded = case Dir of
                    up -> swap_up(Steps, Owner, LeaseMs);
                    down -> swap_down(Steps)
                end,
                Suspended = erlang:monotonic_time(microsecond) - Started,
                Names = lists:zipwith(fun erlang:process_info/2, Ps, repeat(registered_name, Ps)),
                {Loaded, {lists:zip3(column(1, Owners), Ps, Names), Suspended}}
            catch C:E:S -> resume(Ps, StepMs), erlang:raise(C, E, S)
            end
    end.
%% swap_up({Prepared, Moving, Extra, StepMs}, Owner, LeaseMs): load, then
%% code_change; finish's value, or {migrate_failed, Causes, Left, true,
%% Keeper}. A failed code_change takes those migrated back down ({down,
%% Vsn}, in the new code) and leaves every process suspended, held by
%% Keeper, for the tool's undo to load the prior code ({release, Keeper}).
%% Left: the processes whose state is not the prior shape (their way back
%% failed, or their code_change did not end in time).
swap_up({Prepared, Moving, Extra, StepMs}, Owner, LeaseMs) ->
    Ps = column(2, owners(Moving)),
    Mods = column(1, Moving),
    Prior = lists:zip(Mods, current_md5s(Mods)),
    case finish(Prepared) of
        ok ->
            case change_code(Moving, Extra, StepMs) of
                [] -> resume(Ps, StepMs), ok;
                Failed ->
                    Back = [{M, {down, V}, [P || {M2, P, ok} <- Failed, M2 =:= M]} || {M, V, _} <- Moving],
                    {Causes, Left} = went_wrong(Failed, change_code(Back, Extra, StepMs)),
                    {migrate_failed, Causes, Left, true, keep({Moving, Prior, Extra}, Owner, LeaseMs, StepMs)}
            end;
        Refused -> resume(Ps, StepMs), Refused
    end.
%% swap_down({Prepared, Moving, Extra, StepMs}): code_change down in the
%% code running now, then load the prior code; finish's value, or
%% {migrate_failed, Causes, Left, false, none}: a failed code_change takes
%% those migrated back up, and nothing loads.
swap_down({Prepared, Moving, Extra, StepMs}) ->
    Ps = column(2, owners(Moving)),
    Failed = change_code(Moving, Extra, StepMs),
    Again = [{M, V, [P || {M2, P, ok} <- Failed, M2 =:= M]} || {M, {down, V}, _} <- Moving],
    Loaded = case Failed of
        [] ->
            case finish(Prepared) of
                ok -> ok;
                Refused -> change_code([{M, V, Pids} || {M, {down, V}, Pids} <- Moving], Extra, StepMs), Refused
            end;
        _ ->
            {Causes, Left} = went_wrong(Failed, change_code(Again, Extra, StepMs)),
            {migrate_failed, Causes, Left, false, none}
    end,
    resume(Ps, StepMs),
    Loaded.
%% went_wrong(Failed, Back) -> {Causes, Left}: the processes whose
%% code_change failed, and those left in neither shape for sure (their
%% way back failed too, or their code_change did not end in time), each
%% {Module, Pid, Name, Why}.
went_wrong(Failed, Back) ->
    Causes = [F || {_, _, Why} = F <- Failed, Why =/= ok],
    Left = [F || {_, _, Why} = F <- Back, Why =/= ok] ++ [F || {_, _, timeout} = F <- Causes],
    {failures(Causes), failures(Left)}.
%% change_code(Moving, Extra, StepMs) -> [] when every process migrated,
%% else [{Module, Pid, ok | Why}] for every process.
change_code(Moving, Extra, StepMs) ->
    Owners = owners(Moving),
    Reqs = lists:append([repeat({change_code, M, V, Extra}, Ps) || {M, V, Ps} <- Moving]),
    Rs = ask_all(column(2, Owners), Reqs, deadline(StepMs)),
    case all_ok(Rs) of
        true -> [];
        false -> [{M, P, outcome(R)} || {{M, P}, R} <- lists:zip(Owners, Rs)]
    end.
outcome({reply, ok}) -> ok;
outcome({reply, {error, Why}}) -> Why;
outcome({error, {Why, _}}) -> {exited, Why};
outcome(timeout) -> timeout.
%% failures([{Module, Pid, Why}]) -> [{Module, Pid, Name, Text}].
failures(Fs) ->
    [{M, P, name_of(P), unicode:characters_to_binary(io_lib:format("~0tP", [Why, 12]))} || {M, P, Why} <- Fs].
%% resume(Pids, StepMs): every one resumed, answered or not (a process
%% still in its code_change resumes once it is done).
resume([], _) -> ok;
resume(Ps, StepMs) -> ask_all(Ps, repeat(resume, Ps), deadline(StepMs)), ok.
%% keep(Held, Owner, LeaseMs, StepMs) -> Keeper: a process that lets the
%% held processes go on (let_be) when told ({resume, From, Ref}, answered
%% {Ref, resumed}: the undo has loaded the prior code), when the tool's
%% node goes, or after LeaseMs, whichever comes first.
keep(Held, Owner, LeaseMs, StepMs) ->
    spawn(fun() ->
        watch_owner(Owner),
        receive
            {resume, From, Ref} -> let_be(Held, StepMs), From ! {Ref, resumed};
            {nodedown, Owner} -> let_be(Held, StepMs);
            {'DOWN', _, process, Owner, _} -> let_be(Held, StepMs)
        after LeaseMs -> let_be(Held, StepMs)
        end
    end).
%% let_be({Moving, Prior, Extra}, StepMs): the held processes go on only in
%% code their state fits. If the code that ran before the change is back
%% (Prior = [{Module, Md5}]), they are resumed as they are (in its shape).
%% If not (the undo never came, or did not load it), they are migrated up
%% again in the code that runs, and resumed; one whose code_change fails
%% again could only crash there: it is stopped, and the node's log says why.
let_be({Moving, Prior, Extra}, StepMs) ->
    Ps = column(2, owners(Moving)),
    case lists:all(fun erlang:module_loaded/1, column(1, Prior))
         andalso current_md5s(column(1, Prior)) =:= column(2, Prior) of
        true -> resume(Ps, StepMs);
        false ->
            Failed = [P || {_, P, Why} <- change_code(Moving, Extra, StepMs), Why =/= ok],
            [stop_held(P) || P <- Failed],
            resume(Ps -- Failed, StepMs)
    end.
stop_held(P) ->
    logger:error("hotswap-node: ~p was held for an undo that did not bring its code back, "
                 "and its code_change failed again in the code that runs: stopped", [P]),
    exit(P, kill).
%% resume_kept(Keeper): its processes resumed (it may be gone already).
resume_kept(Keeper) ->
    Ref = monitor(process, Keeper),
    Keeper ! {resume, self(), Ref},
    receive
        {Ref, resumed} -> demonitor(Ref, [flush]), ok;
        {'DOWN', Ref, _, _, _} -> ok
    end.
