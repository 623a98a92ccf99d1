# Sea-turtle keypoint metainfo (MMPose format): 6 keypoints seen from above.
# Loaded with parse_pose_metainfo(dict(from_file='configs/_base_/datasets/turtle.py')); the
# flip indices, skeleton and sigmas of every transform, loss and metric come from here.
# Keypoint order = column order of the YOLO label rows (cls cx cy w h x1 y1 ... x6 y6).
dataset_info = dict(
    dataset_name='turtle',
    paper_info=dict(
        author='turtle_plugin',
        title='Sea turtle keypoints (head, four flippers, tail)',
        container='',
        year='',
        homepage='',
    ),
    keypoint_info={
        0: dict(name='head', id=0, color=[51, 153, 255], type='upper', swap=''),
        1: dict(
            name='front_left_flipper',
            id=1,
            color=[0, 255, 0],
            type='upper',
            swap='front_right_flipper'),
        2: dict(
            name='front_right_flipper',
            id=2,
            color=[255, 128, 0],
            type='upper',
            swap='front_left_flipper'),
        3: dict(
            name='rear_left_flipper',
            id=3,
            color=[0, 255, 0],
            type='lower',
            swap='rear_right_flipper'),
        4: dict(
            name='rear_right_flipper',
            id=4,
            color=[255, 128, 0],
            type='lower',
            swap='rear_left_flipper'),
        5: dict(name='tail', id=5, color=[51, 153, 255], type='lower', swap=''),
    },
    skeleton_info={
        0: dict(link=('head', 'front_left_flipper'), id=0, color=[0, 255, 0]),
        1: dict(link=('head', 'front_right_flipper'), id=1, color=[255, 128, 0]),
        2: dict(link=('front_left_flipper', 'rear_left_flipper'), id=2, color=[0, 255, 0]),
        3: dict(link=('front_right_flipper', 'rear_right_flipper'), id=3, color=[255, 128, 0]),
        4: dict(link=('rear_left_flipper', 'tail'), id=4, color=[0, 255, 0]),
        5: dict(link=('rear_right_flipper', 'tail'), id=5, color=[255, 128, 0]),
    },
    joint_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    # OKS sigmas: a starting guess, not measured. COCO's range is 0.025 (eyes) to 0.107 (hips);
    # head and tail tips are small, well-defined points, flipper tips are larger and less
    # certain. Re-estimate from repeated annotations (sigma = std of annotator error / object
    # scale) once available.
    sigmas=[0.06, 0.08, 0.08, 0.08, 0.08, 0.06])
